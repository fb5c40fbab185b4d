"""Celery tasks of the escrow app: thin wrappers that call a service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.core.mail import mail_admins
from django.utils import timezone
from django_fsm import can_proceed

from escrow.backups.service import BackupFailed, backup_drill, backup_run
from escrow.models import (
    ClaimRelease,
    ClaimState,
    DataExport,
    Deposit,
    DepositState,
    Notification,
    ReleaseClaim,
    StoredFile,
)
from escrow.services.audit import audit_chain_verify as verify_chain
from escrow.services.audit import audit_record
from escrow.services.claims import claim_notify_vendor, claims_contest_elapsed
from escrow.services.deposits import deposit_fail
from escrow.services.exports import export_build, export_fail
from escrow.services.files import stored_file_replicate
from escrow.services.intake import deposit_store_sealed
from escrow.services.notifications import notification_send, notifications_send_pending
from escrow.services.releases import release_letter
from escrow.services.replication import deposit_replicate_copies, vault_reconcile, vault_scrub
from escrow.vault.sites import SiteError

logger = logging.getLogger(__name__)


@shared_task(name="escrow.tasks.audit_chain_verify")
def audit_chain_verify() -> dict[str, object]:
    """Verify the audit chain, record the result in it, and alert staff when it is broken."""
    report = verify_chain()
    if report.intact:
        audit_record(action="audit.chain_verified", details={"entries": report.checked})
    else:
        logger.error("Audit chain broken: %s", report.problem)
        mail_admins("Audit chain broken", f"audit_chain_verify: {report.problem}")
    return {"intact": report.intact, "checked": report.checked, "problem": report.problem}


def _retry_or_fail(task: Any, deposit_id: int, step: str, error: SiteError) -> None:
    """Retry a transient site error with backoff; after the last try, or for any other
    error, leave the deposit ``failed`` with the reason (never silently dropped)."""
    # In-process (eager) tasks run inside the request that queued them: a retry
    # there would fail that request, so they record the failure for a staff retry.
    if error.transient and not task.request.is_eager and task.request.retries < task.max_retries:
        raise task.retry(exc=error, countdown=min(600, 5 * 2**task.request.retries))
    deposit = Deposit.objects.filter(pk=deposit_id).first()
    if deposit is not None and can_proceed(deposit.fail):
        deposit_fail(deposit=deposit, problem=f"{step}: {error}")


@shared_task(bind=True, name="escrow.tasks.deposit_store_task", max_retries=5)
def deposit_store_task(self: Any, deposit_id: int) -> None:
    """Store a sealed deposit from the outbox in the primary site."""
    deposit = Deposit.objects.filter(pk=deposit_id, state=DepositState.SEALED).first()
    if deposit is not None:
        deposit_store_sealed(deposit=deposit)


@shared_task(bind=True, name="escrow.tasks.deposit_replicate_task", max_retries=8)
def deposit_replicate_task(self: Any, deposit_id: int) -> None:
    """Copy a stored deposit to every replica site and verify each copy."""
    deposit = Deposit.objects.filter(pk=deposit_id, state=DepositState.STORED).first()
    if deposit is None:
        return
    try:
        deposit_replicate_copies(deposit=deposit)
    except SiteError as error:
        _retry_or_fail(self, deposit_id, "replicate", error)


@shared_task(name="escrow.tasks.vault_reconcile_task")
def vault_reconcile_task() -> dict[str, int]:
    """Copy anything a site lacks (a crash or an outage missed it); never deletes."""
    repairs = vault_reconcile()
    if repairs.problems:
        logger.error("vault reconcile left problems: %s", repairs.problems)
        mail_admins("Vault reconcile left problems", "\n".join(repairs.problems))
    return {"copied": len(repairs.copied), "problems": len(repairs.problems)}


@shared_task(name="escrow.tasks.vault_scrub_task")
def vault_scrub_task() -> dict[str, int]:
    """Re-hash every stored copy and heal damaged ones from good copies."""
    repairs = vault_scrub()
    if repairs.healed or repairs.problems:
        mail_admins(
            "Vault scrub found damaged copies",
            "\n".join([*(f"healed {line}" for line in repairs.healed), *repairs.problems]),
        )
    return {"healed": len(repairs.healed), "problems": len(repairs.problems)}


@shared_task(
    bind=True,
    name="escrow.tasks.notification_send_task",
    max_retries=5,
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_jitter=True,
)
def notification_send_task(self: Any, notification_id: int) -> None:
    """Send one notification e-mail; a mail server error is retried with backoff."""
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is not None:
        notification_send(notification=notification)


@shared_task(name="escrow.tasks.notifications_send_pending_task")
def notifications_send_pending_task() -> int:
    """Send notifications that a crash or an outage left unsent."""
    return notifications_send_pending()


@shared_task(bind=True, name="escrow.tasks.stored_file_replicate_task", max_retries=8)
def stored_file_replicate_task(self: Any, stored_file_id: int) -> None:
    """Copy a stored document to every replica site (reconcile catches what this misses)."""
    stored = StoredFile.objects.filter(pk=stored_file_id).first()
    if stored is None:
        return
    try:
        stored_file_replicate(stored=stored)
    except SiteError as error:
        if (
            error.transient
            and not self.request.is_eager
            and self.request.retries < self.max_retries
        ):
            raise self.retry(exc=error, countdown=min(600, 5 * 2**self.request.retries)) from error
        # The hourly reconcile copies it once the site is back.
        logger.error("could not replicate %s: %s", stored.key, error)


@shared_task(name="escrow.tasks.export_build_task")
def export_build_task(export_id: int) -> None:
    """Build a requested data export; a storage or disk failure marks it failed."""
    export = DataExport.objects.filter(pk=export_id, state=DataExport.State.BUILDING).first()
    if export is None:
        return
    try:
        export_build(export=export)
    except (SiteError, OSError) as error:
        logger.exception("data export %s failed", export_id)
        export_fail(export=export, problem=str(error))


@shared_task(name="escrow.tasks.claim_notify_vendor_task")
def claim_notify_vendor_task(claim_id: int) -> None:
    """Tell the vendor of a new claim and start its contest period."""
    claim = ReleaseClaim.objects.filter(pk=claim_id, state=ClaimState.FILED).first()
    if claim is not None:
        claim_notify_vendor(claim=claim)


@shared_task(name="escrow.tasks.claims_contest_elapsed_task")
def claims_contest_elapsed_task() -> int:
    """Move claims whose contest period has ended on to review (exactly once)."""
    return len(claims_contest_elapsed(now=timezone.now()))


@shared_task(name="escrow.tasks.release_letter_task")
def release_letter_task(release_id: int) -> None:
    """Render and store the release letter of an approved claim."""
    release = ClaimRelease.objects.filter(pk=release_id).first()
    if release is not None:
        release_letter(release=release)


@shared_task(bind=True, name="escrow.tasks.backup_run_task", max_retries=3)
def backup_run_task(self: Any, retry_of: int | None = None) -> int:
    """The daily backup; a failed one is recorded and mailed, then retried."""
    try:
        return backup_run().pk
    except BackupFailed as failed:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=failed, countdown=15 * 60) from failed


@shared_task(name="escrow.tasks.backup_drill_task")
def backup_drill_task() -> bool:
    """The weekly restore drill; a failure is recorded and mailed to staff."""
    return backup_drill().ok
