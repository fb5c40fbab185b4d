"""Rule 6 of docs/billing.md: a period that costs nothing (a zero licence fee, or 5%
that rounds to 0.00) is active at once and renews without an invoice; a fee that
becomes due later is invoiced as usual."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.models import Invoice, LicenceAgreement
from billing.services import subscription_subscribe, subscriptions_renew_due
from records.models import AuditEntry, Notification
from tests.billing.lifecycle import at


@pytest.mark.parametrize("annual_fee", ["0.00", "0.09"])  # 5% of 0.09 is 0.0045: 0.00
def test_a_free_subscription_is_active_at_once_without_an_invoice(
    licence, subscriber, annual_fee
) -> None:
    """Edge 5: a zero-fee licence, or one whose 5% rounds to 0.00, could never become
    active: its 0.00 invoice could not be paid."""
    LicenceAgreement.objects.filter(pk=licence.pk).update(annual_fee=Decimal(annual_fee))
    licence.refresh_from_db()
    with at(2027, 3, 15):
        subscription = subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    assert (subscription.state, subscription.period_start, subscription.period_end) == (
        "active",
        date(2027, 3, 15),
        date(2028, 1, 1),
    )
    assert not Invoice.objects.exists()
    entry = AuditEntry.objects.get(action="subscription.activate")
    assert entry.actor is None
    assert entry.reason == (
        "no fee is due for the first period (EUR 0.00): active without an invoice"
    )
    assert "No fee is due" in Notification.objects.get(kind="subscription_activated").body


def test_a_free_subscription_renews_without_an_invoice_until_a_fee_is_due(
    licence, subscriber, settings
) -> None:
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    LicenceAgreement.objects.filter(pk=licence.pk).update(annual_fee=Decimal("0.00"))
    licence.refresh_from_db()
    with at(2027, 1, 1):
        subscription = subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    with at(2027, 12, 2):
        assert subscriptions_renew_due(today=date(2027, 12, 2)) == []
    subscription.refresh_from_db()
    assert (subscription.state, subscription.period_start, subscription.period_end) == (
        "active",
        date(2028, 1, 1),
        date(2029, 1, 1),
    )
    renewed = AuditEntry.objects.get(action="subscription.renew")
    assert "renewed without an invoice" in renewed.reason
    assert not Invoice.objects.exists()

    # The licence fee rises: the next renewal is invoiced as usual.
    LicenceAgreement.objects.filter(pk=licence.pk).update(annual_fee=Decimal("10000.00"))
    with at(2028, 12, 2):
        (renewal,) = subscriptions_renew_due(today=date(2028, 12, 2))
    assert (renewal.period_start, renewal.period_end, renewal.net_amount) == (
        date(2029, 1, 1),
        date(2030, 1, 1),
        Decimal("500.00"),
    )
    subscription.refresh_from_db()
    assert subscription.period_end == date(2029, 1, 1)  # not renewed until it is paid
