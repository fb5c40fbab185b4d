"""Subscription years run from licence anniversary to licence anniversary."""

from __future__ import annotations

from datetime import date


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def period_containing(*, licence_start: date, today: date) -> tuple[date, date]:
    """The subscription year (start, end) that contains ``today``; ``end`` is the next
    anniversary. Before the licence starts, the first year begins at its start."""
    if today < licence_start:
        return licence_start, add_years(licence_start, 1)
    years = today.year - licence_start.year
    start = add_years(licence_start, years)
    if start > today:
        start = add_years(licence_start, years - 1)
    return start, add_years(start, 1)
