"""``{{ amount|money:currency }}``: money is never shown without its currency."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template

register = template.Library()


@register.filter
def money(amount: Any, currency: str) -> str:
    """``EUR 1,234.50``; a negative amount keeps its sign after the currency."""
    if amount is None or amount == "":
        return "—"
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{currency} {value:,.2f}"
