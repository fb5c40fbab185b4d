"""Deposit records and their state machine.

The vault (checking, sealing, storing, replicating) drives these transitions
from its Celery tasks; this module only records them."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from escrow.models import (
    Deposit,
    DepositAcknowledgement,
    DepositState,
    Notification,
    Organisation,
    Product,
    User,
)
from escrow.services.audit import audit_record
from escrow.services.notifications import notify
from escrow.services.transitions import TransitionRefused, apply_transition


def deposit_register(
    *,
    product: Product,
    version: str,
    archive_sha256: str,
    archive_size: int | None,
    actor: User | None = None,
    actor_label: str | None = None,
) -> Deposit:
    """Record a newly received deposit (state ``received``) after validating its fields."""
    deposit = Deposit(
        product=product, version=version, archive_sha256=archive_sha256, archive_size=archive_size
    )
    deposit.full_clean(exclude=["state"])
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
    from escrow.vault.keys import system_signing_key
    from escrow.vault.manifest import sign_manifest

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
            notify(
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
    from escrow.tasks import deposit_replicate_task, deposit_store_task

    follow_up = {
        DepositState.SEALED.value: deposit_store_task,
        DepositState.STORED.value: deposit_replicate_task,
    }.get(deposit.failed_from)
    if deposit.state == DepositState.FAILED and follow_up is None:
        raise TransitionRefused(
            f"Deposit #{deposit.pk} failed before it was sealed ({deposit.problem}); "
            "nothing of it is kept, so the pipeline must upload the same archive again."
        )

    def queue_follow_up() -> None:
        if follow_up is not None:
            follow_up.delay(deposit.pk)

    return apply_transition(
        deposit, "retry", actor=actor, reason=reason, after_commit=queue_follow_up
    )
