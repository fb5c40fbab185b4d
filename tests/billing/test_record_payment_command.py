"""Rule 9 of docs/billing.md: `record_payment` refuses absurd amounts and dates outside
the invoice's issue date and today with a clear error, never a traceback, and records
nothing."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import Payment, Subscription
from records.models import AuditEntry
from tests.billing.lifecycle import at, subscribe


@pytest.fixture
def invoice(licence, subscriber):
    with at(2027, 1, 1):  # a whole licence year: EUR 605.00
        _, invoice = subscribe(licence, subscriber)
    assert invoice.total == Decimal("605.00")
    return invoice


def record(*arguments: str) -> str:
    out = io.StringIO()
    call_command("record_payment", *arguments, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        ("1e30", "is larger than any invoice can be"),  # edge 11: it ended in a traceback
        ("1e999999999", "is larger than any invoice can be"),
        ("1E+1000000000000000000", "is not an amount"),
        ("1e-999999999", "has more than two decimals"),
        ("9" * 5000, "is larger than any invoice can be"),
        ("-5", "is not a positive amount"),
        ("0", "is not a positive amount"),
        ("NaN", "is not a positive amount"),
        ("Infinity", "is not a positive amount"),
        ("-Infinity", "the following arguments are required: amount"),  # read as an option
        ("abc", "is not an amount"),
        ("605,00", "is not an amount"),
        ("", "is not an amount"),
        ("10.001", "has more than two decimals"),
        ("600.00", "605.00 due, not 600.00"),
    ],
)
def test_a_hostile_amount_is_refused_by_name(invoice, amount, problem) -> None:
    audit_before = AuditEntry.objects.count()
    with at(2027, 1, 2), pytest.raises(CommandError, match=problem):
        record(invoice.number, amount)
    assert not Payment.objects.exists()
    assert AuditEntry.objects.count() == audit_before


@pytest.mark.parametrize(
    ("received", "problem"),
    [
        # Edge 11: a payment dated before its invoice was accepted.
        ("2026-12-31", "was issued on 2027-01-01; a payment received on 2026-12-31 is before it"),
        ("2027-01-03", "cannot be received in the future: 2027-01-03 is after today"),
        ("2027-02-30", "is not a date"),
        ("99999-01-01", "is not a date"),
        ("yesterday", "is not a date"),
    ],
)
def test_a_day_outside_the_invoice_and_today_is_refused(invoice, received, problem) -> None:
    with at(2027, 1, 2), pytest.raises(CommandError, match=problem):
        record(invoice.number, "605.00", "--date", received)
    assert not Payment.objects.exists()
    assert Subscription.objects.get().state == "awaiting_payment"


@pytest.mark.parametrize("number", ["2027-99999", "'; DROP TABLE billing_invoice; --", "x" * 500])
def test_an_unknown_invoice_is_named(invoice, number) -> None:
    with at(2027, 1, 2), pytest.raises(CommandError, match="There is no invoice"):
        record(number, "605.00")
    assert not Payment.objects.exists()


def test_the_day_of_issue_and_today_are_both_accepted(invoice) -> None:
    with at(2027, 1, 2):
        out = record(invoice.number, "605.00", "--date", "2027-01-01")
    assert "Recorded EUR 605.00 for invoice 2027-00001; EUR 0.00 remains due." in out
    assert Payment.objects.get().received_on == date(2027, 1, 1)
    assert Subscription.objects.get().state == "active"
