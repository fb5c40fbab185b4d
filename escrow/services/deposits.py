"""Deposit records and their state machine: one service per transition.

Who moves them: the deposit API's intake (escrow.services.intake) records,
checks, seals and stores in the request that received the upload, because the
plaintext never leaves that process; replication runs as a Celery task
(escrow.services.replication); the notary acknowledges in the notary portal;
staff retry a failed deposit in the admin."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organisation, Product, User
from escrow.models import Deposit, DepositAcknowledgement, DepositState, DepositToken
from escrow.models.deposits import IN_FLIGHT_STATES
from records.models import Notification
from records.queue import enqueue
from records.services.audit import audit_record
from records.services.notifications import notification_queue
from records.services.transitions import TransitionRefused, apply_transition
from transparency.services import (
    checkpoint_at,
    checkpoint_latest,
    inclusion_proof_for,
    log_append,
    witness_cosign,
    witness_key_active,
)
from vault import sshsig
from vault.keys import system_signing_key
from vault.manifest import canonical_json, sign_manifest

#: The problem prefix of a deposit whose sealed file read back wrong from the primary site:
#: its bytes are lost, so only the pipeline's upload of the same archive can redo it.
DAMAGED_IN_PRIMARY = "damaged_in_primary"

#: A lease owner that names no process: the work was handed to a queued task, which
#: any worker may take at once; if none does before it expires, the sweeper queues it again.
QUEUED = "queued:"


def lease_owner_new() -> str:
    """A lease owner for this process: ``<host>:<pid>:<random>``. The random part alone
    names the intake files of the work done under it (``deposit-<id>.<random>.plain``)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(8)}"


def lease_token(owner: str) -> str:
    """The random part of a lease owner, safe in a file or key name."""
    return owner.rsplit(":", 1)[-1]


def _lease_until(now: datetime, seconds: int | None = None) -> datetime:
    return now + timedelta(seconds=seconds or settings.ESCROW_DEPOSIT_LEASE_SECONDS)


def deposit_lease_take(
    *, deposit: Deposit, owner: str, now: datetime | None = None, seconds: int | None = None
) -> bool:
    """Take (or renew) the lease of an in-flight deposit for ``owner``: a compare-and-set
    on the row, so of two processes only one wins. It succeeds only while the deposit is
    still in the state this copy of it shows and its lease is free, expired, handed to a
    queued task or already ``owner``'s. The instance follows the row."""
    now = now or timezone.now()
    if deposit.state not in IN_FLIGHT_STATES:
        return False
    free = (
        Q(lease_expires_at__isnull=True)
        | Q(lease_expires_at__lte=now)
        | Q(lease_owner=owner)
        | Q(lease_owner__startswith=QUEUED)
    )
    until = _lease_until(now, seconds)
    taken = Deposit.objects.filter(free, pk=deposit.pk, state=deposit.state).update(
        lease_owner=owner, lease_expires_at=until, updated_at=now
    )
    if taken:
        deposit.lease_owner, deposit.lease_expires_at = owner, until
    return bool(taken)


def deposit_lease_renew(*, deposit: Deposit, owner: str, now: datetime | None = None) -> bool:
    """Extend ``owner``'s lease; False when it was lost (taken over by the sweeper or
    another process, or the deposit moved on): the caller must stop and change nothing.

    A lease that ran out but that nobody took is still the owner's: expiry allows a
    take-over, it does not cause one. So a step that could not renew in time (a site
    reading back a large object) carries on unless someone really took the deposit."""
    now = now or timezone.now()
    until = _lease_until(now)
    renewed = Deposit.objects.filter(pk=deposit.pk, state=deposit.state, lease_owner=owner).update(
        lease_expires_at=until
    )
    if renewed:
        deposit.lease_expires_at = until
    return bool(renewed)


def deposit_lease_hand_on(
    *, deposit: Deposit, task_name: str, seconds: int | None = None, now: datetime | None = None
) -> None:
    """Hand the deposit to a queued task: any worker may take the lease at once, and if
    none has finished by ``seconds`` from now the sweeper queues the task again. Called
    in the transaction that queues the task."""
    now = now or timezone.now()
    owner, until = f"{QUEUED}{task_name}", _lease_until(now, seconds)
    Deposit.objects.filter(pk=deposit.pk).update(lease_owner=owner, lease_expires_at=until)
    deposit.lease_owner, deposit.lease_expires_at = owner, until


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
    lease_owner: str = "",
) -> Deposit:
    """Record a newly received deposit (state ``received``) after validating its fields.

    The deposit API (escrow.services.intake) records every upload through this,
    and so do the test factories. A concurrent upload of the same version makes
    this raise ``ValidationError`` or ``IntegrityError``; intake answers it. The
    deposit is born under a lease (``lease_owner``, or a new one): no state without
    an owner, so one whose receiver dies is found by the sweeper."""
    deposit = Deposit(
        product=product,
        version=version,
        archive_sha256=archive_sha256,
        archive_size=archive_size,
        token=token,
        pipeline=dict(pipeline or {}),
        lease_owner=lease_owner or lease_owner_new(),
        lease_expires_at=_lease_until(timezone.now()),
    )
    deposit.full_clean(exclude=["state", "token", "lease_owner", "lease_expires_at"])
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
    *,
    deposit: Deposit,
    ciphertext_sha256: str,
    ciphertext_size: int,
    sealed_for: list[str],
    attempt: str = "",
) -> Deposit:
    """The archive was encrypted for the notaries (system only). ``attempt`` names the
    sealing attempt whose sealed file and manifest are already in the primary site.

    The manifest hash joins the transparency log in the same transaction: a deposit is
    never sealed without its leaf, and no leaf exists for a sealing that rolled back."""
    with transaction.atomic():
        apply_transition(
            deposit,
            "seal",
            actor=None,
            ciphertext_sha256=ciphertext_sha256,
            ciphertext_size=ciphertext_size,
            sealed_for=sealed_for,
            attempt=attempt,
            details={
                "ciphertext_sha256": ciphertext_sha256,
                "recipients": sealed_for,
                "attempt": attempt,
            },
        )
        log_append(deposit_id=deposit.pk, manifest_sha256=deposit.manifest_sha256)
    return deposit


def deposit_store(*, deposit: Deposit) -> Deposit:
    """The sealed file is in the primary site and read back intact (system only)."""
    return apply_transition(deposit, "store", actor=None)


def deposit_replicate(*, deposit: Deposit) -> Deposit:
    """Every replica site holds a verified copy (system only)."""
    return apply_transition(deposit, "replicate", actor=None)


def deposit_acknowledge(
    *,
    deposit: Deposit,
    notary: User,
    witness_signature: str | None = None,
    checkpoint_size: int | None = None,
) -> Deposit:
    """The notary confirms it holds the deposit: a receipt over the manifest hash,
    signed with the system key, is recorded with the transition.

    The receipt carries the deposit's inclusion proof against a signed checkpoint of the
    transparency log (``checkpoint_size``, the one the notary was shown; default the
    latest) and, as a witness, the notary's own SSHSIG over that checkpoint, checked
    against its witness key before anything is recorded. A notary with a witness key
    must co-sign; one without (callers other than the portal, which refuses them, and
    logs that are still empty) acknowledges without, and the receipt says so
    (docs/security.md, "The transparency log and its witnesses")."""
    now = timezone.now()
    if checkpoint_size is not None:
        checkpoint = checkpoint_at(checkpoint_size)
        if checkpoint is None:
            raise ValidationError(f"The log has no checkpoint of {checkpoint_size} deposits.")
    else:
        checkpoint = checkpoint_latest()
    proof = inclusion_proof_for(deposit.pk, checkpoint=checkpoint) if checkpoint else None
    witness_key = witness_key_active(notary)
    if witness_key is not None and checkpoint is not None and not witness_signature:
        raise ValidationError(
            f"Co-sign checkpoint {checkpoint.size} of the log with your witness key "
            f"{witness_key.fingerprint} to acknowledge."
        )
    receipt: dict[str, Any] = {
        "kind": "escrow-deposit-acknowledgement/v1",
        "deposit": deposit.pk,
        "product": deposit.product.slug,
        "version": deposit.version,
        "manifest_sha256": deposit.manifest_sha256,
        "ciphertext_sha256": deposit.ciphertext_sha256,
        "notary": notary.email,
        "acknowledged_at": now.isoformat(timespec="seconds"),
    }
    if checkpoint is not None:
        receipt["log_inclusion"] = proof.as_dict() if proof is not None else None
    with transaction.atomic():
        if checkpoint is not None and witness_signature:
            cosigned = witness_cosign(
                notary=notary, checkpoint=checkpoint, signature=witness_signature
            )
            receipt["witness"] = {
                "checkpoint": cosigned.checkpoint,
                "public_key": cosigned.public_key,
                "signature": cosigned.signature,
            }
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


def receipt_sshsig(receipt: Mapping[str, Any]) -> str:
    """The receipt's SSHSIG (receipt namespace) beside its raw Ed25519 signature: over
    the same canonical JSON bytes, so ``ssh-keygen -Y verify -n escrow-receipt@<domain>``
    checks a saved receipt. Ed25519 is deterministic, so this gives the same signature
    every time for the same key and is computed on demand rather than stored."""
    return sshsig.sign(canonical_json(receipt), system_signing_key(), sshsig.namespace("receipt"))


def deposit_reject(*, deposit: Deposit, problem: str) -> Deposit:
    """Bad input: the archive failed a check; the reason is kept on the deposit."""
    return apply_transition(deposit, "reject", actor=None, reason=problem, problem=problem)


def deposit_fail(*, deposit: Deposit, problem: str, tell_staff: bool = False) -> Deposit:
    """An infrastructure step failed; the deposit waits for a retry, never dropped.

    With ``tell_staff`` the reason is mailed to staff once the failure commits: the
    intake and the sweeper use it, so no deposit fails without a person being told
    (the replication task's own final failure is mailed by records.queue)."""
    with transaction.atomic():
        apply_transition(deposit, "fail", actor=None, reason=problem, problem=problem)
        if tell_staff:
            subject = f"Deposit {deposit.product.slug} {deposit.version} failed"
            body = (
                f"Deposit #{deposit.pk} ({deposit.product.slug} {deposit.version}) failed "
                f"from '{deposit.failed_from}':\n{problem}\n\n"
                "The pipeline's status URL shows the same reason. See docs/operations.md, "
                "'Deposit failed'."
            )
            transaction.on_commit(lambda: mail_admins(subject, body))
    return deposit


def deposit_durable(deposit: Deposit) -> bool:
    """Whether what the failed step needs is in the primary site, not only on the
    machine that received the upload: a sealed attempt, or stored copies; never a
    sealed file the primary was found to have damaged."""
    if deposit.problem.startswith(DAMAGED_IN_PRIMARY):
        return False
    if deposit.failed_from == DepositState.SEALED:
        return bool(deposit.seal_attempt)
    return deposit.failed_from == DepositState.STORED


def deposit_retry(*, deposit: Deposit, actor: User | None, reason: str = "") -> Deposit:
    """Return a failed deposit to the step that failed and run that step again.

    Only steps that need nothing but what the primary site holds can be retried
    here, on any machine: storing (the sealed file and manifest are in the primary
    since sealing) and replicating. A deposit that failed before it was sealed needs
    the pipeline to upload the same archive again, which resumes it (so does one
    sealed into a machine's outbox before sealed files went to the primary: its
    store fails again, naming that)."""
    follow_up = {
        DepositState.SEALED.value: "escrow.deposit_store_sealed",
        DepositState.STORED.value: "escrow.deposit_replicate_copies",
    }.get(deposit.failed_from)
    if deposit.state == DepositState.FAILED and deposit.problem.startswith(DAMAGED_IN_PRIMARY):
        raise TransitionRefused(
            f"Deposit #{deposit.pk}'s sealed file read back damaged from the primary site; "
            "its bytes are lost, so the pipeline must upload the same archive again."
        )
    if deposit.state == DepositState.FAILED and follow_up is None:
        raise TransitionRefused(
            f"Deposit #{deposit.pk} failed before it was sealed ({deposit.problem}); "
            "nothing of it is kept, so the pipeline must upload the same archive again."
        )
    if follow_up is not None:
        # Handed to the queued task within the retry's own transaction (the save below).
        seconds = (
            settings.ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS
            if deposit.failed_from == DepositState.STORED
            else None
        )
        deposit.lease_owner = f"{QUEUED}{follow_up}"
        deposit.lease_expires_at = _lease_until(timezone.now(), seconds)

    def queue_follow_up() -> None:
        if follow_up is not None:
            enqueue(follow_up, deposit_id=deposit.pk)

    return apply_transition(
        deposit, "retry", actor=actor, reason=reason, after_commit=queue_follow_up
    )


def deposit_resume_upload(
    *, deposit: Deposit, actor_label: str, reason: str, lease_owner: str
) -> Deposit:
    """The pipeline uploaded the archive of a failed deposit whose sealed file never
    reached the primary site again: it starts over from ``received`` under the
    uploading process's lease, and this upload carries it from there."""
    if deposit.state == DepositState.FAILED and deposit_durable(deposit):
        raise TransitionRefused(
            f"Deposit #{deposit.pk} failed after it was sealed; staff retry it (deposit_retry)."
        )
    deposit.lease_owner = lease_owner
    deposit.lease_expires_at = _lease_until(timezone.now())
    return apply_transition(
        deposit,
        "retry",
        actor=None,
        actor_label=actor_label,
        reason=reason,
        resume_at=DepositState.RECEIVED,
    )
