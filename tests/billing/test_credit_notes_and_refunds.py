"""Rule 7 of docs/billing.md: credit notes, refunds, ending cover early and recording
payments are staff actions in the admin, each on a page that asks for its figures and
a reason; amount due = total - credited - paid + refunded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction

from billing.models import Invoice, Payment, Refund, Subscription
from billing.payments import refund_record
from billing.services import subscription_end_cover_now
from records.models import AuditEntry, Notification
from tests.billing.lifecycle import at, pay, subscribe
from tests.conftest import signed_in_client
from tests.factories import LicenceFactory

INVOICES = "/admin/billing/invoice/"
SUBSCRIPTIONS = "/admin/billing/subscription/"


def admin_action(staff, url: str, action: str, objects, **fields):
    """Choose ``action`` for ``objects`` in the admin list; with ``apply``, submit its form."""
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], **fields}
    return signed_in_client(staff).post(url, data, follow=True)


def shown(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


@pytest.fixture
def paid(licence, subscriber) -> tuple[Subscription, Invoice]:
    """Subscribed and paid on 1 January 2027: EUR 500.00 + 21% VAT = 605.00 for 2027."""
    with at(2027, 1, 1):
        subscription, invoice = subscribe(licence, subscriber)
        pay(invoice, on=date(2027, 1, 1))
    subscription.refresh_from_db()
    return subscription, invoice


def test_recording_a_payment_asks_for_the_amount_and_the_day(licence, subscriber, staff) -> None:
    with at(2027, 1, 1):
        subscription, invoice = subscribe(licence, subscriber)  # a whole year: 605.00
    with at(2027, 1, 5):
        form = admin_action(staff, INVOICES, "record_payment", [invoice])
        page = form.content.decode()
        assert 'value="605.00"' in page and 'value="2027-01-05"' in page  # the defaults
        assert not Payment.objects.exists()  # choosing the action records nothing
        wrong = admin_action(
            staff, INVOICES, "record_payment", [invoice],
            apply="1", amount="600.00", received_on="2027-01-05",
        )  # fmt: skip
        assert "605.00 due, not 600.00" in shown(wrong)
        hostile = admin_action(
            staff, INVOICES, "record_payment", [invoice],
            apply="1", amount="1e30", received_on="yesterday",
        )  # fmt: skip
        assert "larger than any invoice can be" in hostile.content.decode()
        assert "Enter a valid date" in hostile.content.decode()
        assert not Payment.objects.exists()
        done = admin_action(
            staff, INVOICES, "record_payment", [invoice],
            apply="1", amount="605.00", received_on="2027-01-04",
        )  # fmt: skip
    assert "payment of 605.00 received on 2027-01-04 recorded" in shown(done)
    payment = Payment.objects.get()
    assert (payment.amount, payment.received_on, payment.recorded_by) == (
        Decimal("605.00"),
        date(2027, 1, 4),
        staff,
    )
    subscription.refresh_from_db()
    assert subscription.state == "active"


def test_payments_and_refunds_are_recorded_one_invoice_at_a_time(
    licence, subscriber, staff, organisation_b, product
) -> None:
    with at(2027, 1, 5):
        _, first = subscribe(licence, subscriber)
        other = LicenceFactory(customer=organisation_b, product=product)
        _, second = subscribe(other, staff)
        response = admin_action(staff, INVOICES, "record_payment", [first, second])
    assert "select exactly one" in shown(response)


def test_a_credit_note_needs_a_reason_and_a_paid_invoice_is_then_owed_back(
    paid, staff, subscriber
) -> None:
    """Edge 12: crediting a paid invoice left a negative amount due, with no refund record."""
    _, invoice = paid
    with at(2027, 2, 1):
        no_reason = admin_action(staff, INVOICES, "issue_credit_note", [invoice], apply="1")
        assert "This field is required" in no_reason.content.decode()
        assert not invoice.credit_notes.exists()
        done = admin_action(
            staff, INVOICES, "issue_credit_note", [invoice], apply="1", reason="wrong licence"
        )
    note = invoice.credit_notes.get()
    assert f"credit note {note.number} issued for -605.00" in shown(done)
    assert "EUR 605.00 is now owed back" in shown(done)
    assert note.lines.get().description == f"Credit for invoice {invoice.number}: wrong licence"
    assert invoice.amount_due() == Decimal("-605.00")
    assert invoice.refund_owed() == Decimal("605.00")
    with at(2027, 2, 1):
        listing = signed_in_client(subscriber).get("/portal/invoices/").content.decode()
        admin_list = signed_in_client(staff).get(INVOICES).content.decode()
    assert "Refund owed: EUR 605.00" in listing
    assert "refund owed EUR 605.00" in admin_list


def test_a_refund_is_at_most_what_is_owed_back_and_settles_the_invoice(paid, staff) -> None:
    _, invoice = paid
    with at(2027, 2, 1):
        admin_action(staff, INVOICES, "issue_credit_note", [invoice], apply="1", reason="x")
        too_much = admin_action(
            staff, INVOICES, "record_refund", [invoice],
            apply="1", amount="605.01", paid_on="2027-02-01", reason="bank transfer",
        )  # fmt: skip
        assert "EUR 605.00 is owed back on invoice" in shown(too_much)
        assert not Refund.objects.exists()
        form = admin_action(staff, INVOICES, "record_refund", [invoice])
        assert 'value="605.00"' in form.content.decode()
        done = admin_action(
            staff, INVOICES, "record_refund", [invoice],
            apply="1", amount="605.00", paid_on="2027-02-01", reason="bank transfer",
        )  # fmt: skip
    assert "refund of 605.00 paid on 2027-02-01 recorded" in shown(done)
    refund = Refund.objects.get()
    assert (refund.amount, refund.recorded_by, refund.reason) == (
        Decimal("605.00"),
        staff,
        "bank transfer",
    )
    # amount due = total - credited - paid + refunded = 605 - 605 - 605 + 605
    assert invoice.amount_due() == Decimal("0.00")
    assert invoice.refund_owed() == Decimal("0.00")
    assert AuditEntry.objects.filter(action="refund.record", actor=staff).exists()
    assert "We paid back EUR 605.00" in Notification.objects.get(kind="refund_recorded").body
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        Refund.objects.filter(pk=refund.pk).update(amount=Decimal("1.00"))


def test_a_refund_is_refused_without_anything_owed_or_with_bad_figures(
    paid, staff, subscriber
) -> None:
    _, invoice = paid
    with at(2027, 2, 1):
        with pytest.raises(ValidationError, match="Nothing is owed back"):
            refund_record(
                invoice=invoice,
                amount=Decimal("1.00"),
                paid_on=date(2027, 2, 1),
                reason="x",
                actor=staff,
            )
        with pytest.raises(PermissionDenied):
            refund_record(
                invoice=invoice,
                amount=Decimal("1.00"),
                paid_on=date(2027, 2, 1),
                reason="x",
                actor=subscriber,
            )
        for amount, paid_on, reason, problem in [
            (Decimal("1.00"), date(2027, 2, 1), "  ", "needs a reason"),
            (Decimal("-1.00"), date(2027, 2, 1), "x", "positive amount in cents"),
            (Decimal("1.001"), date(2027, 2, 1), "x", "positive amount in cents"),
            (Decimal("1.00"), date(2027, 2, 2), "x", "in the future"),
            (Decimal("1.00"), date(2026, 12, 31), "x", "before it"),
        ]:
            with pytest.raises(ValidationError, match=problem):
                refund_record(
                    invoice=invoice, amount=amount, paid_on=paid_on, reason=reason, actor=staff
                )
    assert not Refund.objects.exists()


def test_ending_cover_now_credits_the_unused_days(paid, staff, subscriber) -> None:
    subscription, invoice = paid
    with at(2027, 10, 2):
        no_reason = admin_action(staff, SUBSCRIPTIONS, "end_cover_now", [subscription], apply="1")
        assert "This field is required" in no_reason.content.decode()
        subscription.refresh_from_db()
        assert subscription.state == "active"
        done = admin_action(
            staff, SUBSCRIPTIONS, "end_cover_now", [subscription],
            apply="1", reason="licence terminated",
        )  # fmt: skip
    subscription.refresh_from_db()
    assert subscription.state == "cancelled"
    note = invoice.credit_notes.get()
    # 91 unused days (2 October to 31 December) of 365: 500.00 x 91/365 = 124.657 -> 124.66
    # net, and 21% VAT 26.18: EUR 150.84 credited and owed back.
    assert (note.net_amount, note.vat_amount, note.total) == (
        Decimal("-124.66"),
        Decimal("-26.18"),
        Decimal("-150.84"),
    )
    assert "91 of 365 days unused: licence terminated" in note.lines.get().description
    assert f"credited: {note.number} (-150.84)" in shown(done)
    assert invoice.refund_owed() == Decimal("150.84")
    cancelled = Notification.objects.filter(kind="subscription_cancelled")
    assert {n.audience for n in cancelled} == {"organisation", "staff"}


def test_only_staff_end_cover_now_and_only_with_a_reason(paid, subscriber, staff) -> None:
    subscription, _ = paid
    with at(2027, 10, 2):
        with pytest.raises(PermissionDenied):
            subscription_end_cover_now(subscription=subscription, actor=subscriber, reason="x")
        with pytest.raises(ValidationError, match="reason"):
            subscription_end_cover_now(subscription=subscription, actor=staff, reason=" ")
    subscription.refresh_from_db()
    assert subscription.state == "active"


def test_staff_cancel_at_the_period_end_from_the_admin(paid, staff) -> None:
    subscription, _ = paid
    with at(2027, 10, 2):
        response = admin_action(
            staff, SUBSCRIPTIONS, "subscription_cancel_at_period_end", [subscription]
        )
        listing = signed_in_client(staff).get(SUBSCRIPTIONS).content.decode()
    assert "1 done" in shown(response)
    assert "cancelled — cover until 2027-12-31" in listing
    subscription.refresh_from_db()
    assert subscription.is_ending
