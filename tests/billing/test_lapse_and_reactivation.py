"""Rule 3 of docs/billing.md: a late payment reactivates a lapsed subscription for the
period its invoice paid for; re-subscribing never bills that period a second time."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from billing.invoicing import credit_note_issue
from billing.models import Invoice, Payment, Subscription
from billing.payments import PaymentRefused
from billing.selectors import unpaid_invoice_of_lapsed_subscription
from billing.services import (
    resubscribe_refusal,
    subscription_request,
    subscription_subscribe,
    subscriptions_lapse_overdue,
    subscriptions_renew_due,
)
from records.models import AuditEntry, Notification
from tests.billing.lifecycle import at, pay, subscribe
from tests.conftest import signed_in_client


@pytest.fixture(autouse=True)
def _terms(settings) -> None:
    settings.ESCROW_PAYMENT_TERMS_DAYS = 30
    settings.ESCROW_PAYMENT_GRACE_DAYS = 30
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30


def lapsed_first_invoice(licence, subscriber) -> tuple[Subscription, Invoice]:
    """Subscribed on 15 March 2027 (due 14 April), never paid: lapsed on 15 May."""
    with at(2027, 3, 15):
        subscription, invoice = subscribe(licence, subscriber)
    assert invoice.due_on == date(2027, 4, 14)
    with at(2027, 5, 14):
        assert subscriptions_lapse_overdue(today=date(2027, 5, 14)) == []
    with at(2027, 5, 15):
        assert subscriptions_lapse_overdue(today=date(2027, 5, 15)) == [subscription]
    subscription.refresh_from_db()
    assert subscription.state == "lapsed"
    return subscription, invoice


def test_a_late_first_payment_reactivates_for_the_invoiced_period(licence, subscriber) -> None:
    """Edge 1: a late payment after a lapse was accepted, and then nothing happened."""
    subscription, invoice = lapsed_first_invoice(licence, subscriber)
    with at(2027, 6, 1):
        pay(invoice, on=date(2027, 6, 1))
    subscription.refresh_from_db()
    assert (subscription.state, subscription.period_start, subscription.period_end) == (
        "active",
        date(2027, 3, 15),
        date(2028, 1, 1),
    )
    entry = AuditEntry.objects.get(action="subscription.reactivate")
    assert (entry.from_state, entry.to_state) == ("lapsed", "active")
    assert f"invoice {invoice.number} paid after the subscription lapsed" in entry.reason
    reactivated = Notification.objects.get(kind="subscription_reactivated")
    assert "covered from 15 March 2027 until 31 December 2027" in reactivated.body


def test_a_late_renewal_payment_reactivates_for_the_renewal_year(licence, subscriber) -> None:
    with at(2027, 1, 1):
        subscription, invoice = subscribe(licence, subscriber)
        pay(invoice, on=date(2027, 1, 1))
    with at(2027, 12, 2):
        (renewal,) = subscriptions_renew_due(today=date(2027, 12, 2))
    with at(2028, 2, 1):  # 1 January 2028 + 30 days of grace have passed
        assert subscriptions_lapse_overdue(today=date(2028, 2, 1)) == [subscription]
    with at(2028, 2, 10):
        pay(renewal, on=date(2028, 2, 10))
    subscription.refresh_from_db()
    assert (subscription.state, subscription.period_start, subscription.period_end) == (
        "active",
        date(2028, 1, 1),
        date(2029, 1, 1),
    )


def test_resubscribing_while_the_lapsed_invoice_is_unpaid_is_refused(licence, subscriber) -> None:
    """Edge 1: re-subscribing billed the same year a second time."""
    _, invoice = lapsed_first_invoice(licence, subscriber)
    assert unpaid_invoice_of_lapsed_subscription(licence) == invoice
    with at(2027, 6, 1), pytest.raises(ValidationError) as refused:
        subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    (message,) = refused.value.messages
    assert message == resubscribe_refusal(invoice)
    assert f"pay invoice {invoice.number} to reactivate it" in message
    assert "EUR 484.00 for 15 March 2027 to 31 December 2027" in message
    assert Subscription.objects.count() == 1
    assert Invoice.objects.count() == 1


def test_the_subscribe_page_points_to_the_unpaid_invoice(licence, subscriber) -> None:
    _, invoice = lapsed_first_invoice(licence, subscriber)
    with at(2027, 6, 1):
        page = signed_in_client(subscriber).get(f"/portal/licences/{licence.pk}/subscribe/")
    text = page.content.decode()
    assert f"pay invoice {invoice.number} to reactivate it" in text
    assert 'name="accept_terms"' not in text  # nothing to confirm


def test_once_staff_credit_the_lapsed_invoice_the_licence_subscribes_afresh(
    licence, subscriber, staff
) -> None:
    lapsed, invoice = lapsed_first_invoice(licence, subscriber)
    with at(2027, 6, 1):
        credit_note_issue(invoice=invoice, reason="customer subscribes afresh", actor=staff)
        fresh, fresh_invoice = subscribe(licence, subscriber)
    assert fresh.pk != lapsed.pk
    assert (fresh_invoice.period_start, fresh_invoice.period_end) == (
        date(2027, 6, 1),
        date(2028, 1, 1),
    )
    with at(2027, 6, 2), pytest.raises(PaymentRefused, match="credit note"):
        pay(invoice, on=date(2027, 6, 2))


def test_a_late_payment_is_refused_while_the_licence_has_another_open_subscription(
    licence, subscriber, staff
) -> None:
    lapsed, invoice = lapsed_first_invoice(licence, subscriber)
    with at(2027, 6, 1):
        subscription_request(licence=licence, actor=staff)  # staff opened another by hand
        with pytest.raises(PaymentRefused, match="has a newer one"):
            pay(invoice, on=date(2027, 6, 1))
    assert not Payment.objects.exists()
    lapsed.refresh_from_db()
    assert lapsed.state == "lapsed"
