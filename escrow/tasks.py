"""Celery tasks of the escrow app. Each is named for the service it calls, takes
ids, re-fetches, and retries only the transient errors it names (see records.queue)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.core.mail import mail_admins
from django.utils import timezone

from escrow.backups.service import BackupFailed, backup_drill, backup_run
from escrow.models import ClaimRelease, ClaimState, DataExport, Deposit, DepositState, ReleaseClaim
from escrow.services.claims import claim_notify_vendor, claims_contest_elapsed
from escrow.services.exports import export_build, export_fail, exports_fail_stuck
from escrow.services.intake import deposit_store_sealed
from escrow.services.releases import release_letter_render
from escrow.services.replication import (
    deposit_replicate_copies,
    deposit_replication_gave_up,
    vault_reconcile,
    vault_scrub,
)
from escrow.services.sweeper import deposits_sweep
from escrow.services.vault_health import vault_health_check
from records.queue import EscrowTask
from vault.sites import SiteError, SiteUnavailable
from verification.models import BuildVerification, VerificationState

logger = logging.getLogger(__name__)


@shared_task(base=EscrowTask, name="escrow.deposit_store_sealed")
def deposit_store_sealed_task(deposit_id: int) -> None:
    """Store a sealed deposit from the primary site, on any machine. The service leaves
    the deposit ``failed`` with the reason (and tells staff) when the site refuses or is
    down, and does nothing while another live process holds its lease, so a redelivered
    task is harmless."""
    deposit = Deposit.objects.filter(pk=deposit_id, state=DepositState.SEALED).first()
    if deposit is not None:
        deposit_store_sealed(deposit=deposit)


@shared_task(base=EscrowTask, name="escrow.deposit_build_verify")
def deposit_build_verify_task(verification_id: int) -> None:
    """Build a stored deposit from its intake copy, on the machine that received it (the
    task is routed to that machine's queue: verification.routing). A record no longer
    pending (redelivered, or interrupted by the sweeper) is left alone; anything that
    breaks ends the record ``interrupted`` with the reason, and staff are mailed."""
    # Imported here, not at the top: the sandbox code is needed only where builds run,
    # and stays out of every web worker's memory (docs/benchmarks.md, web-upload-rss).
    from escrow.services.build_verification import deposit_build_verify

    verification = BuildVerification.objects.filter(
        pk=verification_id, state=VerificationState.PENDING
    ).first()
    if verification is not None:
        deposit_build_verify(verification=verification)


@shared_task(base=EscrowTask, name="escrow.deposits_sweep")
def deposits_sweep_task() -> dict[str, int]:
    """Take over in-flight deposits whose lease expired; remove orphaned intake files."""
    sweep = deposits_sweep(now=timezone.now())
    return {
        "failed": len(sweep.failed),
        "resumed": len(sweep.resumed),
        "removed": len(sweep.removed),
    }


class DepositReplicateTask(EscrowTask):
    def give_up(self, exc: BaseException, **kwargs: Any) -> None:
        # The deposit stays stored (safe in the primary); staff are told which sites lack
        # it, and the hourly reconcile carries on where the retries stopped.
        deposit = Deposit.objects.filter(pk=kwargs.get("deposit_id", 0)).first()
        if deposit is not None:
            deposit_replication_gave_up(deposit=deposit, reason=f"{type(exc).__name__}: {exc}")


@shared_task(
    base=DepositReplicateTask,
    name="escrow.deposit_replicate_copies",
    autoretry_for=(SiteUnavailable,),
    fails_on=(SiteError,),
    max_retries=8,
)
def deposit_replicate_copies_task(deposit_id: int) -> None:
    """Copy a stored deposit to every replica site and verify each copy."""
    deposit = Deposit.objects.filter(pk=deposit_id, state=DepositState.STORED).first()
    if deposit is not None:
        deposit_replicate_copies(deposit=deposit)


@shared_task(base=EscrowTask, name="escrow.vault_reconcile")
def vault_reconcile_task() -> dict[str, int]:
    """Copy anything a site lacks (a crash or an outage missed it); never deletes."""
    repairs = vault_reconcile()
    if repairs.problems:
        logger.error("vault reconcile left problems: %s", repairs.problems)
        mail_admins("Vault reconcile left problems", "\n".join(repairs.problems))
    return {
        "copied": len(repairs.copied),
        "recorded": len(repairs.recorded),
        "promoted": len(repairs.promoted),
        "problems": len(repairs.problems),
    }


@shared_task(base=EscrowTask, name="escrow.vault_scrub")
def vault_scrub_task() -> dict[str, int]:
    """Re-hash every stored copy and heal damaged ones from good copies."""
    repairs = vault_scrub()
    if repairs.healed or repairs.problems:
        mail_admins(
            "Vault scrub found damaged copies",
            "\n".join([*(f"healed {line}" for line in repairs.healed), *repairs.problems]),
        )
    return {
        "healed": len(repairs.healed),
        "recorded": len(repairs.recorded),
        "promoted": len(repairs.promoted),
        "problems": len(repairs.problems),
    }


@shared_task(base=EscrowTask, name="escrow.vault_health_check")
def vault_health_check_task() -> dict[str, int]:
    """Check every deposit has a verified copy in every site; mail staff when not."""
    health = vault_health_check()
    return {"checked": health.checked, "problems": len(health.problems)}


class ExportBuildTask(EscrowTask):
    def give_up(self, exc: BaseException, **kwargs: Any) -> None:
        export = DataExport.objects.filter(pk=kwargs.get("export_id", 0)).first()
        if export is not None:
            export_fail(export=export, problem=f"{type(exc).__name__}: {exc}")


@shared_task(
    base=ExportBuildTask,
    name="escrow.export_build",
    autoretry_for=(SiteUnavailable,),
    fails_on=(SiteError, OSError),
)
def export_build_task(export_id: int) -> None:
    """Build a requested data export. The service ends it failed on any error but an
    unreachable vault site, which is retried; giving up on that fails it too."""
    export = DataExport.objects.filter(pk=export_id, state=DataExport.State.BUILDING).first()
    if export is not None:
        export_build(export=export)


@shared_task(base=EscrowTask, name="escrow.exports_fail_stuck")
def exports_fail_stuck_task() -> int:
    """End exports whose build was lost (still building after the timeout) as failed."""
    return exports_fail_stuck()


@shared_task(base=EscrowTask, name="escrow.claim_notify_vendor")
def claim_notify_vendor_task(claim_id: int) -> None:
    """Tell the vendor of a new claim and start its contest period."""
    claim = ReleaseClaim.objects.filter(pk=claim_id, state=ClaimState.FILED).first()
    if claim is not None:
        claim_notify_vendor(claim=claim)


@shared_task(base=EscrowTask, name="escrow.claims_contest_elapsed")
def claims_contest_elapsed_task() -> int:
    """Move claims whose contest period has ended on to review (exactly once)."""
    return len(claims_contest_elapsed(now=timezone.now()))


@shared_task(
    base=EscrowTask,
    name="escrow.release_letter_render",
    autoretry_for=(SiteUnavailable,),
)
def release_letter_render_task(release_id: int) -> None:
    """Render and store the release letter of an approved claim."""
    release = ClaimRelease.objects.filter(pk=release_id).first()
    if release is not None:
        release_letter_render(release=release)


@shared_task(
    base=EscrowTask,
    name="escrow.backup_run",
    autoretry_for=(BackupFailed,),
    retry_backoff=15 * 60,
    retry_backoff_max=60 * 60,
    max_retries=3,
)
def backup_run_task() -> int:
    """The daily backup; a failed one is recorded and mailed (by backup_run), then retried."""
    return backup_run().pk


@shared_task(base=EscrowTask, name="escrow.backup_drill")
def backup_drill_task() -> bool:
    """The weekly restore drill; a failure is recorded and mailed to staff."""
    return backup_drill().ok
