from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def escrow_fee(*, annual_licence_fee: Decimal, rate: Decimal) -> Decimal:
    """The yearly escrow fee: ``rate`` of the licence fee, rounded half-up to the cent."""
    return (annual_licence_fee * rate).quantize(CENT, rounding=ROUND_HALF_UP)
