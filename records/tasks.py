"""Celery tasks of the records app. Each is named for the service it calls, takes
ids, re-fetches, and retries only the transient errors it names (see records.queue)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.core.mail import mail_admins

from records.models import Notification, StoredFile
from records.queue import EscrowTask
from records.services.audit import audit_chain_verify, audit_record
from records.services.files import stored_file_replicate
from records.services.notifications import notification_send, notifications_send_pending
from vault.sites import SiteError, SiteUnavailable

logger = logging.getLogger(__name__)


@shared_task(base=EscrowTask, name="records.audit_chain_verify")
def audit_chain_verify_task() -> dict[str, object]:
    """Verify the audit chain against its anchors, record the result in it, and mail
    staff the outcome with the chain head every day: the mails staff keep are an
    anchor outside the system, to compare a later head with. Running twice (a
    redelivered task) only checks and mails twice."""
    report = audit_chain_verify()
    lines = [report.head_line(), f"Compared with {report.anchors} anchors in the backup site."]
    lines += [f"Warning: {warning}" for warning in report.warnings]
    if report.intact:
        audit_record(action="audit.chain_verified", details={"entries": report.checked})
        subject = "Audit chain intact" + (" (with warnings)" if report.warnings else "")
        body = f"audit_chain_verify: {report.checked} entries intact.\n" + "\n".join(lines)
    else:
        logger.error("Audit chain broken: %s", report.problem)
        subject = f"Audit chain broken at entry #{report.broken_sequence}"
        body = f"audit_chain_verify: {report.problem}\n" + "\n".join(lines)
    mail_admins(subject, body)
    return {"intact": report.intact, "checked": report.checked, "problem": report.problem}


@shared_task(base=EscrowTask, name="records.notification_send", autoretry_for=(OSError,))
def notification_send_task(notification_id: int) -> None:
    """Send one notification e-mail; a mail server error is retried with backoff
    (the outbox sweep, notifications_send_pending, picks up what this gives up on)."""
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is not None:
        notification_send(notification=notification)


@shared_task(base=EscrowTask, name="records.notifications_send_pending")
def notifications_send_pending_task() -> int:
    """Send notifications that a crash or an outage left unsent."""
    return notifications_send_pending()


class StoredFileReplicateTask(EscrowTask):
    def give_up(self, exc: BaseException, **kwargs: Any) -> None:
        # The hourly reconcile copies it once the site is back; staff were mailed.
        logger.error("could not replicate stored file %s: %s", kwargs.get("stored_file_id"), exc)


@shared_task(
    base=StoredFileReplicateTask,
    name="records.stored_file_replicate",
    autoretry_for=(SiteUnavailable,),
    fails_on=(SiteError,),
    max_retries=8,
)
def stored_file_replicate_task(stored_file_id: int) -> None:
    """Copy a stored document to every replica site (reconcile catches what this misses)."""
    stored = StoredFile.objects.filter(pk=stored_file_id).first()
    if stored is not None:
        stored_file_replicate(stored=stored)
