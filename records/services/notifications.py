"""E-mail notifications, sent from an outbox table (see ``Notification``).

A notification is for one audience: an organisation (its contact address, and
for a customer its active customer users), every active notary, or every active
member of staff. The rows stay: the customer and notary portals list them, and
staff read them all in the admin."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Organisation, Role, User
from records.models.notifications import Notification
from records.queue import enqueue_on_commit

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
SUBJECT_CHARS = Notification._meta.get_field("subject").max_length or 200
NO_RECIPIENTS = "nobody to send it to: no contact address and no active user in its audience"


def notification_queue(
    *,
    kind: str,
    subject: str,
    body: str,
    organisation: Organisation | None = None,
    audience: str = Notification.Audience.ORGANISATION,
) -> Notification:
    """Record a notification in the caller's transaction; it is sent once that commits.

    An organisation is named exactly when the audience is one organisation; a
    notice for every notary or all staff names none (ValueError otherwise), so a
    vendor's or customer's notice is never mailed to the wrong party. The subject is
    made one line and cut to fit, never refused: a notice must not undo its change."""
    if audience not in Notification.Audience.values:
        raise ValueError(f"Unknown notification audience {audience!r}.")
    if kind not in Notification.Kind.values:
        raise ValueError(f"Unknown notification kind {kind!r}.")
    if audience == Notification.Audience.ORGANISATION and organisation is None:
        raise ValueError("A notification for an organisation needs the organisation.")
    if audience != Notification.Audience.ORGANISATION and organisation is not None:
        raise ValueError(
            f"A notification for {audience} is for no single organisation; "
            f"do not name {organisation}."
        )
    subject = " ".join(subject.split())  # one line: a mail header holds no line breaks
    if len(subject) > SUBJECT_CHARS:
        # A long organisation name must not make the change itself fail (PostgreSQL
        # refuses an over-long value); the whole text is in the body.
        subject = subject[: SUBJECT_CHARS - 1] + "…"
    notification = Notification.objects.create(
        organisation=organisation, audience=audience, kind=kind, subject=subject, body=body
    )
    enqueue_on_commit("records.notification_send", notification_id=notification.pk)
    return notification


def _active_emails(users: QuerySet[User]) -> list[str]:
    return list(users.filter(is_active=True).values_list("email", flat=True))


def notification_recipients(*, notification: Notification) -> list[str]:
    """The addresses a notification goes to now, sorted and without duplicates.

    Computed when it is sent, not when it is queued: a user who left in between
    gets nothing, and one who joined gets it."""
    audience = notification.audience
    if audience == Notification.Audience.NOTARIES:
        addresses = _active_emails(User.objects.filter(role=Role.NOTARY))
    elif audience == Notification.Audience.STAFF:
        addresses = _active_emails(User.objects.filter(role=Role.STAFF))
    else:
        organisation = notification.organisation
        assert organisation is not None  # the database constraint guarantees it
        users = organisation.users.filter(role=Role.CUSTOMER)
        addresses = [organisation.contact_email, *_active_emails(users)]
    return sorted({address for address in addresses if address})


def notification_send(*, notification: Notification) -> bool:
    """Send one notification unless it was sent already; True when it is sent.

    With nobody to send it to (say, no notary is enrolled yet) it is not marked
    sent: the problem is recorded on it and logged, and the outbox sweep tries
    again, so a notary enrolled later still gets it."""
    with transaction.atomic():
        locked = Notification.objects.select_for_update().get(pk=notification.pk)
        if locked.sent_at is not None:
            return True
        locked.attempts += 1
        locked.save(update_fields=["attempts"])
    recipients = notification_recipients(notification=locked)
    if not recipients:
        logger.warning("notification %s (%s) not sent: %s", locked.pk, locked, NO_RECIPIENTS)
        Notification.objects.filter(pk=locked.pk).update(problem=NO_RECIPIENTS)
        return False
    # Mail is sent outside the row lock: a slow mail server must not hold it.
    try:
        send_mail(
            subject=f"[Software Escrow] {locked.subject}",
            message=locked.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    except OSError as error:
        Notification.objects.filter(pk=locked.pk).update(problem=f"mail server: {error}")
        raise
    Notification.objects.filter(pk=locked.pk, sent_at__isnull=True).update(
        sent_at=timezone.now(), problem=""
    )
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
            if notification_send(notification=notification):
                sent += 1
        except OSError:
            logger.exception("could not send notification %s", notification.pk)
    return sent
