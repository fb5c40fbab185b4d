"""Reading a payment amount typed by staff: a positive amount in cents, or a refusal that
says what is wrong with it (never a crash)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.payments import parse_amount


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        ("630.00", Decimal("630.00")),
        ("630", Decimal("630")),
        ("  630.5 \n", Decimal("630.5")),
        ("0.01", Decimal("0.01")),
        ("12100.00", Decimal("12100.00")),
    ],
)
def test_a_positive_amount_with_at_most_two_decimals_is_read(raw: str, amount: Decimal) -> None:
    parsed = parse_amount(raw)
    assert parsed == amount
    assert isinstance(parsed, Decimal)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "is not an amount; write it like 630.00"),
        ("   ", "is not an amount"),
        ("abc", "is not an amount"),
        ("630,00", "is not an amount"),
        ("EUR 630", "is not an amount"),
        ("-5", "is not a positive amount"),
        ("0", "is not a positive amount"),
        ("0.00", "is not a positive amount"),
        ("NaN", "is not a positive amount"),
        ("sNaN", "is not a positive amount"),
        ("Infinity", "is not a positive amount"),
        ("-Infinity", "is not a positive amount"),
        ("1.001", "has more than two decimals"),
        ("0.005", "has more than two decimals"),
    ],
)
def test_a_bad_amount_is_refused_naming_the_problem(raw: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_amount(raw)
    (message,) = refused.value.messages
    assert problem in message
    assert repr(raw) in message  # the refusal quotes what was typed


def test_something_that_is_not_text_is_refused_as_no_amount() -> None:
    with pytest.raises(ValidationError, match="is not an amount"):
        parse_amount(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["1e30", "1e26"])
def test_an_absurdly_large_amount_is_refused_not_a_crash(raw: str) -> None:
    # Quantizing such a number to cents needs more digits than the decimal context
    # has: it must be refused by size before that, with a message, not a traceback.
    with pytest.raises(ValidationError, match="larger than any invoice can be"):
        parse_amount(raw)
