from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def escrow_fee(*, annual_licence_fee: Decimal, rate: Decimal) -> Decimal:
    """The yearly escrow fee: ``rate`` of the licence fee, rounded half-up to the cent."""
    return (annual_licence_fee * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def prorated(*, amount: Decimal, days: int, of_days: int) -> Decimal:
    """``amount`` for ``days`` of a year of ``of_days`` days, rounded half-up to the cent.

    A whole year (``days == of_days``) is ``amount`` exactly, so a period that
    starts on the licence anniversary costs the yearly fee to the cent."""
    if of_days <= 0 or not 0 <= days <= of_days:
        raise ValueError(f"Cannot prorate {days} days of a {of_days}-day year.")
    if days == of_days:
        return amount
    return (amount * days / of_days).quantize(CENT, rounding=ROUND_HALF_UP)


def percent_label(rate: Decimal) -> str:
    """A rate as printed on invoices and pages: ``0.085`` is "8.5%", ``0.21`` is "21%",
    ``0`` is "0%". Never rounded to whole percents: an invoice must state the exact
    VAT rate, and one formatter for every rate keeps every page saying the same."""
    percent = (Decimal(rate) * 100).normalize()
    return f"{percent:f}%"
