"""Subscription years run from licence anniversary to licence anniversary.

A period is ``(start, end)``: cover from ``start`` up to the day before ``end``."""

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
        years -= 1
        start = add_years(licence_start, years)
    return start, add_years(licence_start, years + 1)


def first_period_pieces(
    *, licence_start: date, today: date, notice_days: int
) -> list[tuple[date, date]]:
    """The pieces a new subscription's first period is billed in (docs/billing.md, rule 1).

    Cover starts today and runs to the next licence anniversary (a stub, billed
    pro rata). When that stub is no longer than the renewal notice, its renewal
    would fall due the day cover starts, so the following full licence year is
    added as a second piece and the period runs to the anniversary after. Before
    the licence starts, the first period is its first full year."""
    if today <= licence_start:
        return [(licence_start, add_years(licence_start, 1))]
    _, anniversary = period_containing(licence_start=licence_start, today=today)
    pieces = [(today, anniversary)]
    if (anniversary - today).days <= notice_days:
        pieces.append(period_containing(licence_start=licence_start, today=anniversary))
    return pieces


def renewal_period(*, licence_start: date, current_end: date) -> tuple[date, date]:
    """The period a renewal pays for: from the current end to the next licence
    anniversary after it (a full year when the current end is an anniversary)."""
    _, end = period_containing(licence_start=licence_start, today=current_end)
    return current_end, end


def licence_year_days(*, licence_start: date, day: date) -> int:
    """How many days the licence year containing ``day`` has (365 or 366)."""
    start, end = period_containing(licence_start=licence_start, today=day)
    return (end - start).days
