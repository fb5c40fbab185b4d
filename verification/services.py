"""Moving a build verification through its states, its lease, and the product recipes.

Every state change goes through ``records.services.transitions.apply_transition``:
checked, saved and audited together. The record refers to its deposit by id only
(escrow, which builds and seals, sits above this app); the build itself is run by
``escrow.services.build_verification``.

The lease: a verification that is open (``pending`` or ``running``) owns a plaintext
intake copy of the deposit, ``deposit-<id>.<token>.verify``, where ``<token>`` is the
last part of ``lease_owner``. ``lease_until`` says until when; the sweeper interrupts a
verification whose lease has run out and removes its copy."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Product, User
from records.services.audit import audit_record
from records.services.transitions import apply_transition
from vault.build_recipe import RecipeError, parse_recipe
from verification.models import (
    OPEN_STATES,
    BuildVerification,
    ProductBuildRecipe,
    VerificationState,
)

NO_RECIPE_HINT = (
    "No build recipe: the archive has no escrow.toml at its root (or in its only top "
    "folder) and the product has no recipe. Add escrow.toml to the archive (a [build] "
    "table with command and artefacts; see docs/verification.md), or have the pipeline "
    "set the product's recipe (PUT /api/v1/products/<slug>/build-recipe)."
)

INTERRUPTED_NO_COPY = (
    "not verified (interrupted): the process that received the deposit stopped before "
    "verification could start, and the source it held is gone. The next deposit is "
    "verified as usual."
)


def verification_copy_path(deposit_id: int, token: str) -> Path:
    """The plaintext intake copy a verification builds from, named by deposit and lease."""
    return Path(settings.ESCROW_INTAKE_DIR) / f"deposit-{deposit_id}.{token}.verify"


def _mark_copy(verification: BuildVerification) -> None:
    """Write the lease's expiry as the intake copy's modification time: start-up, which
    may not ask the database, removes the copy once that time has passed
    (escrow.services.sweeper.intake_orphans_remove)."""
    if verification.lease_until is None or not verification.lease_owner:
        return
    expires = verification.lease_until.timestamp()
    path = verification_copy_path(verification.deposit_id, verification.lease_token)
    with contextlib.suppress(FileNotFoundError):
        os.utime(path, (expires, expires))


def _lease_until(now: datetime, seconds: int | None = None) -> datetime:
    return now + timedelta(seconds=seconds or settings.ESCROW_VERIFY_LEASE_SECONDS)


def verification_open(
    *,
    deposit_id: int,
    product_id: int,
    lease_owner: str,
    has_copy: bool,
    problem: str = "",
    archive_holds_recipe: bool = True,
    now: datetime | None = None,
) -> tuple[BuildVerification, bool]:
    """Record a stored deposit's verification and say whether a build should be queued.

    ``pending`` under ``lease_owner``'s lease when this process holds the intake copy
    (``has_copy``) and this machine's bounded queue has room: at most
    ``ESCROW_VERIFY_SLOTS`` running and ``ESCROW_VERIFY_QUEUE`` waiting. ``busy`` when
    it is full; the caller removes the copy at once. ``interrupted`` without a copy
    (the receiving process stopped and another stored it, or the copy could not be
    written: ``problem``). ``no_recipe`` at once, with nothing queued and the copy to
    be removed, when the inspection found no recipe file where one could be
    (``archive_holds_recipe`` false, see ``vault.build_recipe.holds_recipe_file``) and
    the product has no recipe either: nothing would be built, so the plaintext is
    neither kept nor read again to learn that. The copy's modification time becomes
    the lease's expiry. A deposit stored again (a retry) keeps its first record, and
    nothing is queued. Returns ``(record, queue_it)``."""
    now = now or timezone.now()
    existing = BuildVerification.objects.filter(deposit_id=deposit_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            record = BuildVerification.objects.create(
                deposit_id=deposit_id,
                product_id=product_id,
                lease_owner=lease_owner if has_copy else "",
                lease_until=_lease_until(now) if has_copy else None,
            )
            audit_record(
                action="buildverification.open",
                target=record,
                to_state=VerificationState.PENDING,
                details={"deposit_id": deposit_id},
            )
            if not has_copy:
                verification_interrupt(
                    verification=record,
                    problem=f"not verified (interrupted): {problem}"
                    if problem
                    else INTERRUPTED_NO_COPY,
                    now=now,
                )
                return record, False
            if (
                not archive_holds_recipe
                and not ProductBuildRecipe.objects.filter(product_id=product_id).exists()
            ):
                verification_no_recipe(verification=record, problem=NO_RECIPE_HINT, now=now)
                return record, False
            # Each receiving machine builds its own deposits: its queue is bounded.
            host = lease_owner.split(":", 1)[0]
            open_count = BuildVerification.objects.filter(
                state__in=OPEN_STATES, lease_owner__startswith=f"{host}:"
            ).count()
            room = settings.ESCROW_VERIFY_SLOTS + settings.ESCROW_VERIFY_QUEUE
            if open_count > room:  # the count includes this record
                apply_transition(
                    record,
                    "refuse_busy",
                    actor=None,
                    problem=(
                        f"not verified (busy): {open_count - 1} verifications were already "
                        f"running or waiting (at most {settings.ESCROW_VERIFY_SLOTS} run "
                        f"and {settings.ESCROW_VERIFY_QUEUE} wait). The next deposit is "
                        "verified as usual."
                    ),
                    finished_at=now,
                )
                return record, False
    except IntegrityError:
        # Another process recorded it first (two stores of the same deposit).
        return BuildVerification.objects.get(deposit_id=deposit_id), False
    _mark_copy(record)
    return record, True


def verification_start(
    *, verification: BuildVerification, owner: str, seconds: int, now: datetime | None = None
) -> bool:
    """Take a free build slot on this machine and the record's lease for ``owner``
    (``pending -> running``), for ``seconds``. False, with nothing changed, when every
    slot of this host is busy or the record is no longer pending (another worker took
    it, or the sweeper interrupted it); the caller waits or stops."""
    now = now or timezone.now()
    host = owner.split(":", 1)[0]
    with transaction.atomic():
        running = BuildVerification.objects.filter(
            state=VerificationState.RUNNING,
            lease_owner__startswith=f"{host}:",
            lease_until__gt=now,
        ).count()
        if running >= settings.ESCROW_VERIFY_SLOTS:
            return False
        fresh = (
            BuildVerification.objects.select_for_update()
            .filter(pk=verification.pk, state=VerificationState.PENDING)
            .first()
        )
        if fresh is None or fresh.lease_until is None or fresh.lease_until <= now:
            return False
        # The token names the intake copy; it stays, only the process changes.
        fresh.lease_owner = f"{host}:{owner.split(':')[1]}:{fresh.lease_token}"
        apply_transition(
            fresh, "start", actor=None, started_at=now, lease_until=_lease_until(now, seconds)
        )
    verification.refresh_from_db()
    _mark_copy(verification)
    return True


def verification_lease_renew(
    *, verification: BuildVerification, seconds: int | None = None, now: datetime | None = None
) -> bool:
    """Extend the lease of an open verification while it waits or builds; False once it
    was lost (the sweeper interrupted it): the caller stops and removes its copy."""
    now = now or timezone.now()
    until = _lease_until(now, seconds)
    renewed = BuildVerification.objects.filter(
        pk=verification.pk,
        state__in=OPEN_STATES,
        lease_owner=verification.lease_owner,
        lease_until__gt=now,
    ).update(lease_until=until)
    if renewed:
        verification.lease_until = until
        _mark_copy(verification)
    return bool(renewed)


def verification_finish(
    *, verification: BuildVerification, outcome: str, problem: str = "", **fields: Any
) -> BuildVerification:
    """Record the build's outcome (``running -> passed | failed | timed_out``) with what
    it produced: ``exit_code``, ``finished_at``, ``duration_seconds``, ``log_tail``,
    ``artefacts``, ``toolchain``, the sealed log and the signed addendum."""
    if outcome not in (
        VerificationState.PASSED,
        VerificationState.FAILED,
        VerificationState.TIMED_OUT,
    ):
        raise ValueError(f"{outcome!r} is not a build outcome")
    return apply_transition(
        verification,
        "finish",
        actor=None,
        details={"outcome": outcome, "exit_code": fields.get("exit_code")},
        outcome=outcome,
        problem=problem,
        **fields,
    )


def verification_no_recipe(
    *, verification: BuildVerification, problem: str, now: datetime | None = None
) -> BuildVerification:
    """The archive keeps no usable recipe and the product has none: nothing was built."""
    return apply_transition(
        verification,
        "find_no_recipe",
        actor=None,
        problem=problem,
        finished_at=now or timezone.now(),
    )


def verification_interrupt(
    *, verification: BuildVerification, problem: str, now: datetime | None = None
) -> BuildVerification:
    """An open verification that cannot finish (its lease expired, its intake copy is
    gone): recorded "not verified (interrupted)" with the reason."""
    return apply_transition(
        verification,
        "interrupt",
        actor=None,
        reason=problem,
        problem=problem,
        finished_at=now or timezone.now(),
    )


def verifications_expired(*, now: datetime) -> list[BuildVerification]:
    """Open verifications whose lease ran out by ``now`` (or that have none)."""
    return list(
        BuildVerification.objects.filter(state__in=OPEN_STATES)
        .exclude(lease_until__gt=now)
        .order_by("pk")
    )


def live_verification_tokens(deposit_ids: set[int], *, now: datetime) -> dict[int, str]:
    """The intake-copy token of each of these deposits whose verification holds a live
    lease: the sweeper keeps exactly those ``.verify`` files."""
    rows = BuildVerification.objects.filter(
        deposit_id__in=deposit_ids, state__in=OPEN_STATES, lease_until__gt=now
    ).values_list("deposit_id", "lease_owner")
    return {deposit_id: owner.rsplit(":", 1)[-1] for deposit_id, owner in rows if owner}


def product_recipe_set(
    *, product: Product, text: str, actor: User | None, actor_label: str | None = None
) -> ProductBuildRecipe:
    """Set (or replace) a product's build recipe, used for its deposits whose archive
    keeps no ``escrow.toml``. The text is checked as the archive's would be; a bad one
    raises ``ValidationError`` naming the field and the problem. ``actor_label`` names
    an actor that is not a person (a deposit token) in the audit."""
    try:
        parse_recipe(text, source="product")
    except RecipeError as error:
        raise ValidationError({"text": str(error)}) from None
    with transaction.atomic():
        recipe, created = ProductBuildRecipe.objects.update_or_create(
            product=product, defaults={"text": text, "updated_by": actor}
        )
        audit_record(
            action=f"productbuildrecipe.{'add' if created else 'change'}",
            actor=actor,
            actor_label=actor_label,
            target=recipe,
            details={"product": product.slug},
        )
    return recipe
