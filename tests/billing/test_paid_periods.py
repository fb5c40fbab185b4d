"""Rule 2 of docs/billing.md: activating and renewing take the period from the invoice
that was paid, never from the day the payment arrived."""

from __future__ import annotations

from datetime import date

from billing.models import Invoice
from billing.services import (
    subscription_activate,
    subscription_await_payment,
    subscriptions_renew_due,
)
from tests.billing.lifecycle import at, pay, run_billing_schedule, subscribe
from tests.factories import make_subscription


def test_paid_on_21_december_it_does_not_renew_the_same_day(licence, subscriber, settings) -> None:
    """Edge 4: paid on 21 December, the subscription triggered a full renewal the same day."""
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    with at(2026, 12, 2):
        subscription, invoice = subscribe(licence, subscriber)
    with at(2026, 12, 21):
        pay(invoice, on=date(2026, 12, 21))
        run_billing_schedule()
    subscription.refresh_from_db()
    assert (subscription.state, subscription.period_start, subscription.period_end) == (
        "active",
        date(2026, 12, 2),
        date(2028, 1, 1),
    )
    assert not Invoice.objects.filter(purpose="renewal").exists()


def test_paid_on_15_january_it_covers_what_the_invoice_names(licence, subscriber, settings) -> None:
    """Edge 4: paid on 15 January, the subscription was given the new year while the
    invoice named the old one. Now it covers the invoiced period, and the new year is
    a renewal with a number of the new year."""
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    settings.ESCROW_PAYMENT_GRACE_DAYS = 30
    with at(2026, 11, 20):  # 42 days to 1 January: the stub alone
        subscription, invoice = subscribe(licence, subscriber)
    assert (invoice.number, invoice.period_start, invoice.period_end) == (
        "2026-00001",
        date(2026, 11, 20),
        date(2027, 1, 1),
    )
    with at(2027, 1, 15):
        pay(invoice, on=date(2027, 1, 15))
        subscription.refresh_from_db()
        assert (subscription.state, subscription.period_start, subscription.period_end) == (
            "active",
            date(2026, 11, 20),
            date(2027, 1, 1),
        )
        run_billing_schedule()
    renewal = Invoice.objects.get(purpose="renewal")
    assert (renewal.number, renewal.period_start, renewal.period_end) == (
        "2027-00001",
        date(2027, 1, 1),
        date(2028, 1, 1),
    )


def test_staff_activating_by_hand_get_the_first_period_of_today(licence, subscriber, staff) -> None:
    subscription = make_subscription(licence=licence, actor=subscriber)
    subscription_await_payment(subscription=subscription, actor=subscriber)
    with at(2027, 3, 15):
        subscription_activate(subscription=subscription, actor=staff)
    assert (subscription.period_start, subscription.period_end) == (
        date(2027, 3, 15),
        date(2028, 1, 1),
    )


def test_a_paid_renewal_covers_exactly_its_invoiced_year(licence, subscriber, settings) -> None:
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    with at(2027, 1, 1):
        subscription, invoice = subscribe(licence, subscriber)
        pay(invoice, on=date(2027, 1, 1))
    with at(2027, 12, 5):
        (renewal,) = subscriptions_renew_due(today=date(2027, 12, 5))
        pay(renewal, on=date(2027, 12, 5))
        assert subscriptions_renew_due(today=date(2027, 12, 5)) == []
    subscription.refresh_from_db()
    assert (subscription.period_start, subscription.period_end) == (
        date(2028, 1, 1),
        date(2029, 1, 1),
    )
