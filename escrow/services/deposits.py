"""Deposit records and their state machine: one service per transition.

Who moves them: the deposit API's intake (escrow.services.intake) records,
checks, seals and stores in the request that received the upload, because the
plaintext never leaves that process; replication runs as a Celery task
(escrow.services.replication); the notary acknowledges in the notary portal;
staff retry a failed deposit in the admin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Organisation, Product, User
from escrow.models import Deposit, DepositAcknowledgement, DepositState, DepositToken
from records.models import Notification
from records.queue import enqueue
from records.services.audit import audit_record
from records.services.notifications import notification_queue
from records.services.transitions import TransitionRefused, apply_transition
from vault.keys import system_signing_key
from vault.manifest import sign_manifest


def deposit_register(
    *,
    product: Product,
    version: str,
    archive_sha256: str,
    archive_size: int | None = None,
    token: DepositToken | None = None,
    pipeline: Mapping[str, str] | None = None,
    actor: User | None = None,
    actor_label: str | None = None,
) -> Deposit:
    """Record a newly received deposit (state ``received``) after validating its fields.

    The deposit API (escrow.services.intake) records every upload through this,
    and so do the test factories. A concurrent upload of the same version makes
    this raise ``ValidationError`` or ``IntegrityError``; intake answers it."""
    deposit = Deposit(
        product=product,
        version=version,
        archive_sha256=archive_sha256,
        archive_size=archive_size,
        token=token,
        pipeline=dict(pipeline or {}),
    )
    deposit.full_clean(exclude=["state", "token"])
    with transaction.atomic():
        deposit.save(force_insert=True)
        audit_record(
            action="deposit.receive",
            actor=actor,
            actor_label=actor_label,
            target=deposit,
            to_state=deposit.state,
            details={"version": version, "archive_sha256": archive_sha256},
        )
    return deposit


def deposit_verify(
    *, deposit: Deposit, manifest: dict[str, Any], manifest_sha256: str, signature: str
) -> Deposit:
    """The archive passed every check and is described by a signed manifest (system only)."""
    return apply_transition(
        deposit,
        "verify",
        actor=None,
        manifest=manifest,
        manifest_sha256=manifest_sha256,
        signature=signature,
    )


def deposit_seal(
    *, deposit: Deposit, ciphertext_sha256: str, ciphertext_size: int, sealed_for: list[str]
) -> Deposit:
    """The archive was encrypted for the notaries (system only)."""
    return apply_transition(
        deposit,
        "seal",
        actor=None,
        ciphertext_sha256=ciphertext_sha256,
        ciphertext_size=ciphertext_size,
        sealed_for=sealed_for,
        details={"ciphertext_sha256": ciphertext_sha256, "recipients": sealed_for},
    )


def deposit_store(*, deposit: Deposit) -> Deposit:
    """The sealed file is in the primary site and read back intact (system only)."""
    return apply_transition(deposit, "store", actor=None)


def deposit_replicate(*, deposit: Deposit) -> Deposit:
    """Every replica site holds a verified copy (system only)."""
    return apply_transition(deposit, "replicate", actor=None)


def deposit_acknowledge(*, deposit: Deposit, notary: User) -> Deposit:
    """The notary confirms it holds the deposit: a receipt over the manifest hash,
    signed with the system key, is recorded with the transition."""
    now = timezone.now()
    receipt = {
        "kind": "escrow-deposit-acknowledgement/v1",
        "deposit": deposit.pk,
        "product": deposit.product.slug,
        "version": deposit.version,
        "manifest_sha256": deposit.manifest_sha256,
        "ciphertext_sha256": deposit.ciphertext_sha256,
        "notary": notary.email,
        "acknowledged_at": now.isoformat(timespec="seconds"),
    }
    with transaction.atomic():
        apply_transition(deposit, "acknowledge", actor=notary, details=receipt)
        DepositAcknowledgement.objects.create(
            deposit=deposit,
            notary=notary,
            acknowledged_at=now,
            manifest_sha256=deposit.manifest_sha256,
            receipt=receipt,
            signature=sign_manifest(receipt, system_signing_key()),
        )
        subscribed = Organisation.objects.filter(
            licences__product=deposit.product, licences__subscriptions__state="active"
        ).distinct()
        for organisation in subscribed:
            notification_queue(
                organisation=organisation,
                kind=Notification.Kind.DEPOSIT_ACKNOWLEDGED,
                subject=f"{deposit.product.name} {deposit.version} is in escrow",
                body=(
                    f"The notary acknowledged the deposit of {deposit.product.name} "
                    f"{deposit.version}: it holds the sealed source in its safe."
                ),
            )
    return deposit


def deposit_reject(*, deposit: Deposit, problem: str) -> Deposit:
    """Bad input: the archive failed a check; the reason is kept on the deposit."""
    return apply_transition(deposit, "reject", actor=None, reason=problem, problem=problem)


def deposit_fail(*, deposit: Deposit, problem: str) -> Deposit:
    """An infrastructure step failed; the deposit waits for a retry, never dropped."""
    return apply_transition(deposit, "fail", actor=None, reason=problem, problem=problem)


def deposit_retry(*, deposit: Deposit, actor: User | None, reason: str = "") -> Deposit:
    """Return a failed deposit to the step that failed and run that step again.

    Only steps that need nothing but what is already sealed can be retried
    here: storing (from the outbox) and replicating (from the primary). A
    deposit that failed before it was sealed needs the pipeline to upload the
    same archive again, which resumes it."""
    follow_up = {
        DepositState.SEALED.value: "escrow.deposit_store_sealed",
        DepositState.STORED.value: "escrow.deposit_replicate_copies",
    }.get(deposit.failed_from)
    if deposit.state == DepositState.FAILED and follow_up is None:
        raise TransitionRefused(
            f"Deposit #{deposit.pk} failed before it was sealed ({deposit.problem}); "
            "nothing of it is kept, so the pipeline must upload the same archive again."
        )

    def queue_follow_up() -> None:
        if follow_up is not None:
            enqueue(follow_up, deposit_id=deposit.pk)

    return apply_transition(
        deposit, "retry", actor=actor, reason=reason, after_commit=queue_follow_up
    )


def deposit_resume_upload(*, deposit: Deposit, actor_label: str, reason: str) -> Deposit:
    """The pipeline uploaded the archive of a deposit that failed before it was sealed
    again: return it to the step that failed, for this upload to carry on from there."""
    if deposit.state == DepositState.FAILED and deposit.failed_from not in (
        DepositState.RECEIVED,
        DepositState.VERIFIED,
    ):
        raise TransitionRefused(
            f"Deposit #{deposit.pk} failed after it was sealed; staff retry it (deposit_retry)."
        )
    return apply_transition(deposit, "retry", actor=None, actor_label=actor_label, reason=reason)
