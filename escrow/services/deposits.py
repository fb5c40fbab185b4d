"""Deposit records and their state machine.

The vault (checking, sealing, storing, replicating) drives these transitions
from its Celery tasks; this module only records them."""

from __future__ import annotations

from django.db import transaction

from escrow.models import Deposit, Product, User
from escrow.services.audit import audit_record
from escrow.services.transitions import apply_transition


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


def deposit_verify(*, deposit: Deposit) -> Deposit:
    """The archive passed every check (system only)."""
    return apply_transition(deposit, "verify", actor=None)


def deposit_seal(*, deposit: Deposit) -> Deposit:
    """The archive was encrypted for the notaries (system only)."""
    return apply_transition(deposit, "seal", actor=None)


def deposit_store(*, deposit: Deposit) -> Deposit:
    """The sealed file is in the primary site and read back intact (system only)."""
    return apply_transition(deposit, "store", actor=None)


def deposit_replicate(*, deposit: Deposit) -> Deposit:
    """Every replica site holds a verified copy (system only)."""
    return apply_transition(deposit, "replicate", actor=None)


def deposit_acknowledge(*, deposit: Deposit, notary: User) -> Deposit:
    """The notary confirms it holds the deposit in its safe."""
    return apply_transition(deposit, "acknowledge", actor=notary)


def deposit_reject(*, deposit: Deposit, problem: str) -> Deposit:
    """Bad input: the archive failed a check; the reason is kept on the deposit."""
    return apply_transition(deposit, "reject", actor=None, reason=problem, problem=problem)


def deposit_fail(*, deposit: Deposit, problem: str) -> Deposit:
    """An infrastructure step failed; the deposit waits for a retry, never dropped."""
    return apply_transition(deposit, "fail", actor=None, reason=problem, problem=problem)


def deposit_retry(*, deposit: Deposit, actor: User | None, reason: str = "") -> Deposit:
    """Return a failed deposit to the step that failed (staff or the system)."""
    return apply_transition(deposit, "retry", actor=actor, reason=reason)
