"""Every notification the brief names reaches the organisation by e-mail, once."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from billing.payments import payment_record
from billing.services import (
    subscription_subscribe,
    subscriptions_lapse_overdue,
    subscriptions_renew_due,
)
from escrow.services.deposits import deposit_acknowledge
from records.models import Notification
from records.services.notifications import notifications_send_pending
from tests.deposits import deposit_through_pipeline


def test_each_kind_is_mailed_to_the_customer(
    licence,
    subscriber,
    staff,
    notary,
    notary_identity,
    product,
    mailoutbox,
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        subscription = subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
        invoice = subscription.invoices.get()
        payment_record(
            invoice_number=invoice.number,
            amount=invoice.total,
            received_on=timezone.localdate(),
            actor=staff,
        )
    subscription.refresh_from_db()
    deposit = deposit_through_pipeline(product=product, staff=staff)
    with django_capture_on_commit_callbacks(execute=True):
        deposit_acknowledge(deposit=deposit, notary=notary)
        subscriptions_renew_due(today=subscription.period_end - timedelta(days=1))
        subscriptions_lapse_overdue(today=subscription.period_end + timedelta(days=400))

    kinds = list(Notification.objects.order_by("pk").values_list("kind", flat=True))
    assert kinds == [
        "invoice_issued",
        "payment_received",
        "subscription_activated",
        "deposit_acknowledged",
        "invoice_issued",
        "renewal_due",
        "subscription_lapsed",
    ]
    assert len(mailoutbox) == len(kinds)
    assert all(subscriber.email in message.to for message in mailoutbox)
    assert all(licence.customer.contact_email in message.to for message in mailoutbox)
    assert "is in escrow" in mailoutbox[3].subject
    assert "lapsed" in mailoutbox[-1].subject
    assert not Notification.objects.filter(sent_at__isnull=True).exists()


def test_a_notification_left_unsent_by_a_crash_is_sent_later_once(
    licence, subscriber, mailoutbox
) -> None:
    # No on_commit callbacks run here: as if the process died right after the commit.
    subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    assert mailoutbox == []
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    assert notifications_send_pending() == 1
    assert notifications_send_pending() == 0
    assert len(mailoutbox) == 1
