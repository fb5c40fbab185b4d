"""The notification outbox: a queued notification is mailed once its transaction commits,
to the organisation and its active customer users, and never twice."""

from __future__ import annotations

import pytest
from django.db import transaction

from records.models import Notification
from records.services.notifications import notification_queue, notification_send
from tests.factories import UserFactory


def queue(organisation, subject: str = "Invoice 2026-00007") -> Notification:
    return notification_queue(
        organisation=organisation,
        kind=Notification.Kind.INVOICE_ISSUED,
        subject=subject,
        body="Invoice 2026-00007 for EUR 630.00 is in your customer portal.",
    )


def test_a_queued_notification_waits_for_its_transaction_to_commit(
    organisation_a, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = queue(organisation_a)
    assert mailoutbox == []
    assert notification.sent_at is None
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(mailoutbox) == 1
    notification.refresh_from_db()
    assert notification.sent_at is not None


def test_a_notification_rolled_back_with_its_change_is_never_sent(
    organisation_a, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        queue(organisation_a)
        raise RuntimeError("the change failed")
    assert not Notification.objects.exists()
    assert mailoutbox == []


def test_sending_mails_the_contact_and_the_active_customer_users(
    organisation_a, subscriber, other_customer, mailoutbox
) -> None:
    UserFactory(email="gone@northwind.example", organisation=organisation_a, is_active=False)
    notification = queue(organisation_a)
    assert notification_send(notification=notification) is True
    (message,) = mailoutbox
    assert message.subject == "[Software Escrow] Invoice 2026-00007"
    assert "EUR 630.00" in message.body
    assert sorted(message.to) == sorted([organisation_a.contact_email, subscriber.email])
    notification.refresh_from_db()
    assert notification.sent_at is not None
    assert notification.attempts == 1


def test_a_sent_notification_is_not_sent_twice(organisation_a, subscriber, mailoutbox) -> None:
    notification = queue(organisation_a)
    notification_send(notification=notification)
    notification.refresh_from_db()
    first_sent_at = notification.sent_at
    assert notification_send(notification=notification) is True
    assert len(mailoutbox) == 1
    notification.refresh_from_db()
    assert (notification.sent_at, notification.attempts) == (first_sent_at, 1)


def test_a_failed_sending_counts_the_attempt_and_leaves_it_unsent(
    organisation_a, subscriber, settings, mailoutbox
) -> None:
    settings.EMAIL_BACKEND = "tests.records.test_notification_outbox.BrokenMailServer"
    notification = queue(organisation_a)
    with pytest.raises(ConnectionRefusedError):
        notification_send(notification=notification)
    notification.refresh_from_db()
    assert (notification.sent_at, notification.attempts) == (None, 1)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notification_send(notification=notification)
    notification.refresh_from_db()
    assert notification.sent_at is not None
    assert notification.attempts == 2


class BrokenMailServer:
    """An e-mail backend whose server refuses every connection."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def send_messages(self, messages: object) -> int:
        raise ConnectionRefusedError("mail server refused the connection")
