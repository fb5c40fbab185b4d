"""E-mail notifications, sent from an outbox table (see ``Notification``)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import Organisation, Role
from records.models.notifications import Notification
from records.queue import enqueue_on_commit

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 10


def notification_queue(
    *, organisation: Organisation, kind: str, subject: str, body: str
) -> Notification:
    """Record a notification in the caller's transaction; it is sent once that commits."""
    notification = Notification.objects.create(
        organisation=organisation, kind=kind, subject=subject, body=body
    )
    enqueue_on_commit("records.notification_send", notification_id=notification.pk)
    return notification


def _recipients_of(organisation: Organisation) -> list[str]:
    """The organisation's contact address and its active customer users."""
    users = organisation.users.filter(is_active=True, role=Role.CUSTOMER)
    addresses = [organisation.contact_email, *users.values_list("email", flat=True)]
    return sorted({address for address in addresses if address})


def notification_send(*, notification: Notification) -> bool:
    """Send one notification unless it was sent already; True when it is sent."""
    with transaction.atomic():
        locked = Notification.objects.select_for_update().get(pk=notification.pk)
        if locked.sent_at is not None:
            return True
        locked.attempts += 1
        locked.save(update_fields=["attempts"])
    # Mail is sent outside the row lock: a slow mail server must not hold it.
    send_mail(
        subject=f"[Software Escrow] {locked.subject}",
        message=locked.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=_recipients_of(locked.organisation),
    )
    Notification.objects.filter(pk=locked.pk, sent_at__isnull=True).update(sent_at=timezone.now())
    return True


def notifications_send_pending(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    """Send what a crash or a mail outage left unsent; returns how many went out."""
    cutoff = timezone.now() - older_than
    pending = Notification.objects.filter(
        sent_at__isnull=True, created_at__lte=cutoff, attempts__lt=MAX_ATTEMPTS
    )
    sent = 0
    for notification in pending.order_by("created_at")[:500]:
        try:
            notification_send(notification=notification)
            sent += 1
        except OSError:
            logger.exception("could not send notification %s", notification.pk)
    return sent
