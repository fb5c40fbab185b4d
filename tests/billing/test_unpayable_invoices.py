"""Rule 5 of docs/billing.md: an invoice of a cancelled subscription, or one credited
meanwhile, is not payable; the refusal names the cancellation or the credit note, and
nothing is recorded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.invoicing import Line, credit_note_issue, invoice_issue
from billing.models import Invoice, Payment
from billing.payments import PaymentRefused, payment_record
from billing.services import (
    subscription_cancel,
    subscription_cancel_at_period_end,
    subscriptions_renew_due,
)
from records.models import AuditEntry
from tests.billing.lifecycle import at, pay, subscribe


def refused(invoice: Invoice, *, on: date, amount: Decimal) -> str:
    audit_before = AuditEntry.objects.count()
    with pytest.raises(PaymentRefused) as refusal:
        payment_record(invoice_number=invoice.number, amount=amount, received_on=on, actor=None)
    assert not Payment.objects.filter(invoice=invoice).exists()
    assert AuditEntry.objects.count() == audit_before
    return str(refusal.value)


def test_the_invoice_of_a_cancelled_subscription_cannot_be_paid(licence, subscriber) -> None:
    """Edge 2: a cancelled subscription's invoice could still be paid."""
    with at(2027, 3, 1):
        subscription, invoice = subscribe(licence, subscriber)
        subscription_cancel(subscription=subscription, actor=subscriber, reason="changed mind")
        note = invoice.credit_notes.get()
        message = refused(invoice, on=date(2027, 3, 1), amount=invoice.total)
    assert message == (
        f"Invoice {invoice.number} is for the escrow subscription for Ledger Pro, which was "
        f"cancelled on 01 March 2027: it is not payable. It was credited by credit note "
        f"{note.number}. Nothing was recorded."
    )
    subscription.refresh_from_db()
    assert subscription.state == "cancelled"


def test_the_renewal_of_a_subscription_cancelled_at_its_period_end_cannot_be_paid(
    licence, subscriber, settings
) -> None:
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    with at(2027, 1, 1):
        subscription, invoice = subscribe(licence, subscriber)
        pay(invoice, on=date(2027, 1, 1))
    with at(2027, 12, 2):
        (renewal,) = subscriptions_renew_due(today=date(2027, 12, 2))
        subscription.refresh_from_db()
        subscription_cancel_at_period_end(subscription=subscription, actor=subscriber)
        message = refused(renewal, on=date(2027, 12, 2), amount=renewal.total)
    assert "which was cancelled: cover ends after 31 December 2027 and is not renewed" in message
    assert renewal.credit_notes.get().number in message
    subscription.refresh_from_db()
    assert subscription.period_end == date(2028, 1, 1)


def test_a_credited_invoice_cannot_be_paid(organisation_a, vendor, staff) -> None:
    with at(2027, 3, 1):
        invoice = invoice_issue(
            customer=organisation_a,
            vendor=vendor,
            purpose=Invoice.Purpose.DATA_EXPORT,
            lines=[Line("Data export", Decimal("250.00"))],
            currency="EUR",
            actor=None,
        )
        note = credit_note_issue(invoice=invoice, reason="export failed", actor=staff)
        message = refused(invoice, on=date(2027, 3, 1), amount=Decimal("302.50"))
    assert message == (
        f"Invoice {invoice.number} is not due. It was credited by credit note {note.number}. "
        "Nothing was recorded."
    )
