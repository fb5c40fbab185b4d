"""From the release pipeline's upload to a sealed file in the primary site.

The steps that need the plaintext run in the process that received the upload,
so the source never leaves that machine: the body is read once and, in the same
pass, hashed, inspected, encrypted and written into a pending object in the
primary site (vault.one_pass), committed only if the archive was accepted. The
intake folder (ESCROW_INTAKE_DIR) holds only an empty ``deposit-<id>.<lease>.lease``
marker, whose modification time is the lease's expiry, and for a zip, which
cannot be inspected before its end, the spooled plaintext
``deposit-<id>.<lease>.plain``; both are removed when the request ends, also on
failure, and the sweeper removes any whose lease expired (a killed process). With
build verification on, the accepted plaintext is also kept as
``deposit-<id>.<lease>.verify``, the one file that outlives the request: once the
deposit is stored it is handed to its ``BuildVerification``'s own lease and queued
for the build on this machine (escrow.services.build_verification); a deposit
refused or failed removes it with the others. The
deposit is ``sealed`` only once the sealed file and manifest are in the primary
site: from then on any process on any machine can store it (record its copies,
``stored``) and replicate it.

Every step runs under the deposit's lease (escrow.services.deposits), renewed
while the body streams; a process that finds its lease lost (the sweeper took the
deposit over) stops without changing anything.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition

from escrow.models import Deposit, DepositCopy, DepositState, DepositToken
from escrow.models.deposits import version_validator
from escrow.services.deposits import (
    deposit_durable,
    deposit_fail,
    deposit_lease_hand_on,
    deposit_lease_renew,
    deposit_lease_take,
    deposit_register,
    deposit_reject,
    deposit_resume_upload,
    deposit_retry,
    deposit_seal,
    deposit_store,
    deposit_verify,
    lease_owner_new,
    lease_token,
)
from escrow.services.recipients import seal_recipients
from records.queue import call_after_answer, enqueue_on_commit
from vault import age
from vault.archive import ArchiveLimits, ArchiveRejected, ArchiveReport
from vault.build_recipe import holds_recipe_file
from vault.keys import system_signing_key
from vault.manifest import (
    ManifestError,
    build_manifest,
    canonical_json,
    manifest_sha256,
    sign_manifest,
)
from vault.one_pass import BodyMismatch, BodyTooLarge, Sealed, seal_in_one_pass
from vault.site_clients import all_sites
from vault.sites import SiteError, StorageSiteClient
from verification.models import BuildVerification, VerificationState
from verification.services import verification_open

logger = logging.getLogger(__name__)
CHUNK = 1024 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
#: States in which a deposit is safe in the primary site: only then is a re-upload
#: answered "already deposited".
SAFE_STATES = (DepositState.STORED, DepositState.REPLICATED, DepositState.ACKNOWLEDGED)
#: The problem prefix of a deposit failed because the intake folder was full.
INTAKE_FULL = "intake_full"


class DepositRefused(Exception):
    """The request itself is wrong (a header, the version); nothing was recorded."""


class DepositConflict(Exception):
    """The version was already deposited with other content; a version never changes."""

    def __init__(self, message: str, *, existing: Deposit):
        super().__init__(message)
        self.existing = existing


class LeaseLost(Exception):
    """This process's lease on the deposit expired and another took it over."""


@dataclass(frozen=True)
class Received:
    """What an upload did. ``outcome``: ``new`` (recorded and carried as far as it
    went), ``resumed`` (an incomplete deposit of the same archive was carried on),
    ``already`` (it was already safe in the primary site: nothing was done), ``busy``
    (another live process is working on it: nothing was done)."""

    deposit: Deposit
    outcome: str

    @property
    def created(self) -> bool:
        return self.outcome == "new"


def _intake_file(deposit: Deposit, owner: str, suffix: str) -> Path:
    """An intake file's name says whose it is: the deposit and the lease it is worked under."""
    return settings.ESCROW_INTAKE_DIR / f"deposit-{deposit.pk}.{lease_token(owner)}.{suffix}"


class _Lease:
    """Keeps this process's lease on a deposit while a long step runs: renewed when a
    third of its length has passed, checked (``keep(now=True)``) before every
    transition. Raises ``LeaseLost`` once another process has taken the deposit."""

    def __init__(self, deposit: Deposit, owner: str) -> None:
        self.deposit = deposit
        self.owner = owner
        self.renewed = time.time()
        self.marker: Path | None = None

    def keep(self, *, now: bool = False) -> None:
        due = time.time() - self.renewed > settings.ESCROW_DEPOSIT_LEASE_SECONDS / 3
        if not (now or due):
            return
        if not deposit_lease_renew(deposit=self.deposit, owner=self.owner):
            raise LeaseLost(f"the lease of deposit #{self.deposit.pk} was taken over")
        self.renewed = time.time()
        self.mark()

    def mark(self) -> None:
        """Write the lease's expiry into the intake folder too, as the modification time
        of ``deposit-<id>.<lease>.lease``: start-up, which may not ask the database, tells
        an orphaned intake file by it (sweeper.intake_orphans_remove)."""
        if self.marker is None or self.deposit.lease_expires_at is None:
            return
        expires = self.deposit.lease_expires_at.timestamp()
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.marker, (expires, expires))


def _archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_archive_bytes=settings.ESCROW_MAX_ARCHIVE_BYTES,
        max_members=settings.ESCROW_MAX_MEMBERS,
        max_expanded_bytes=settings.ESCROW_MAX_EXPANDED_BYTES,
        max_ratio=float(settings.ESCROW_MAX_EXPANSION_RATIO),
    )


def _validate_request(version: str, claimed_sha256: str, pipeline: Mapping[str, str]) -> None:
    try:
        version_validator(version)
    except ValidationError as error:
        raise DepositRefused(f"Version {version[:100]!r}: {error.messages[0]}") from None
    if not SHA256_HEX.match(claimed_sha256):
        raise DepositRefused(
            "X-Archive-SHA256 must be the archive's SHA-256 as 64 lower-case hex digits."
        )
    for key, value in pipeline.items():
        if len(value) > 2000 or any(ord(char) < 32 for char in value):
            raise DepositRefused(
                f"Pipeline metadata {key!r} is too long or has control characters."
            )


def _existing(token: DepositToken, version: str) -> Deposit | None:
    return (
        Deposit.objects.filter(product=token.product, version=version)
        .exclude(state=DepositState.REJECTED)
        .first()
    )


def _resume(existing: Deposit, owner: str, label: str) -> str:
    """Take over an incomplete deposit of the same archive for this upload, if nobody
    live is working on it. Returns what this upload does next: ``body`` (receive,
    check and seal the body again), ``store`` (store from the primary site),
    ``queued`` (its replication was queued again), ``already`` (safe already:
    nothing) or ``busy`` (another process holds its lease)."""
    reason = "the pipeline uploaded the same archive again"
    state = existing.state
    if state in SAFE_STATES:
        expires = existing.lease_expires_at
        lost = expires is None or expires <= timezone.now()
        if (
            state == DepositState.STORED
            and lost
            and deposit_lease_take(deposit=existing, owner=owner)
        ):
            # Its replication was lost (the lease ran out): queue it again.
            with transaction.atomic():
                deposit_lease_hand_on(
                    deposit=existing,
                    task_name="escrow.deposit_replicate_copies",
                    seconds=settings.ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS,
                )
                enqueue_on_commit(
                    "escrow.deposit_replicate_copies", after_answer=True, deposit_id=existing.pk
                )
        return "already"
    try:
        if state == DepositState.FAILED:
            if deposit_durable(existing):
                deposit_retry(deposit=existing, actor=None, reason=reason)
                return "queued" if existing.state == DepositState.STORED else "store"
            deposit_resume_upload(
                deposit=existing, actor_label=label, reason=reason, lease_owner=owner
            )
            return "body"
        if not deposit_lease_take(deposit=existing, owner=owner):
            return "busy"
        if state == DepositState.SEALED and existing.seal_attempt:
            return "store"
        # Received or verified (or sealed in an outbox of old) by a process that
        # stopped: what it had was lost with it, so this upload starts over.
        deposit_fail(
            deposit=existing,
            problem=f"interrupted while {state}: the process working on it stopped.",
        )
        deposit_resume_upload(deposit=existing, actor_label=label, reason=reason, lease_owner=owner)
        return "body"
    except ConcurrentTransition:
        # Another upload of the same archive moved it first.
        existing.refresh_from_db()
        return "busy"


def deposit_receive(
    *,
    token: DepositToken,
    version: str,
    body: BinaryIO,
    claimed_sha256: str,
    content_length: int | None,
    pipeline: Mapping[str, str],
) -> Received:
    """Take one upload from a release pipeline through check, seal and store.

    An upload of an archive already deposited continues that deposit for real:
    safe already (``outcome="already"``), being worked on by a live process
    (``busy``), or carried on from what is durable, which may mean receiving this
    body again (``resumed``). Raises ``DepositConflict`` for other content under the
    same version and ``DepositRefused`` for a malformed request. A bad archive ends
    as a ``rejected`` deposit naming the problem; an unreachable primary site or a
    full intake folder as a ``failed`` one that the same upload resumes.

    Longer than most because every early exit must remove the intake files and
    record the same way; the steps themselves are the helpers it calls."""
    claimed_sha256 = claimed_sha256.strip().lower()
    _validate_request(version, claimed_sha256, pipeline)
    recipients = seal_recipients()  # before reading anything: no key, no deposit
    label = f"token:{token.prefix}"
    owner = lease_owner_new()
    existing = _existing(token, version)
    outcome = "resumed"
    if existing is None:
        try:
            deposit = deposit_register(
                product=token.product,
                version=version,
                archive_sha256=claimed_sha256,
                token=token,
                pipeline=pipeline,
                actor_label=label,
                lease_owner=owner,
            )
            outcome, step = "new", "body"
        except (IntegrityError, ValidationError):
            # Another upload of the same version won the race; answer as for a retry.
            existing = _existing(token, version)
            if existing is None:
                raise
    if existing is not None:
        if existing.archive_sha256 != claimed_sha256:
            raise DepositConflict(
                f"{token.product.slug} {version} was already deposited with SHA-256 "
                f"{existing.archive_sha256}; a deposited version never changes.",
                existing=existing,
            )
        deposit = existing
        step = _resume(existing, owner, label)
        if step in ("already", "busy"):
            return Received(deposit, step)
        if step == "queued":
            return Received(deposit, outcome)

    copy = _intake_file(deposit, owner, "verify") if settings.ESCROW_VERIFY_ENABLED else None
    try:
        _carry_on(deposit, step, owner, body, content_length, recipients, copy)
    finally:
        # The intake copy stays only with the verification that holds it. Removing a
        # large file takes a while, so it is removed once the answer is out; if this
        # process dies first, the sweeper removes it (no live lease holds it).
        if copy is not None and copy.exists() and not _copy_held(deposit, owner):
            call_after_answer(functools.partial(copy.unlink, missing_ok=True))
    return Received(deposit, outcome)


def _copy_held(deposit: Deposit, owner: str) -> bool:
    return BuildVerification.objects.filter(
        deposit_id=deposit.pk, state=VerificationState.PENDING, lease_owner=owner
    ).exists()


def _carry_on(
    deposit: Deposit,
    step: str,
    owner: str,
    body: BinaryIO,
    content_length: int | None,
    recipients: list[age.PublicRecipient],
    copy: Path | None,
) -> None:
    """Receive, check and seal the body (``step == "body"``), then store what is sealed."""
    copy_problem = ""
    holds_recipe = True
    if step == "body":
        if content_length is not None and content_length > settings.ESCROW_MAX_ARCHIVE_BYTES:
            deposit_reject(
                deposit=deposit,
                problem=(
                    f"too_large_archive: the body is {content_length} bytes; the limit is "
                    f"{settings.ESCROW_MAX_ARCHIVE_BYTES} bytes."
                ),
            )
            return
        try:
            copy_problem, holds_recipe = _check_and_seal(
                deposit, body, recipients, _Lease(deposit, owner), copy
            )
        except LeaseLost:
            logger.warning("deposit #%s was taken over while this upload worked on it", deposit.pk)
            deposit.refresh_from_db()
            return
    if deposit.state == DepositState.SEALED:
        written = step == "body"
        deposit_store_sealed(
            deposit=deposit,
            lease_owner=owner,
            just_written=written,
            verify_copy=copy if written else None,
            copy_problem=copy_problem,
            archive_holds_recipe=holds_recipe,
        )


def _check_and_seal(
    deposit: Deposit,
    body: BinaryIO,
    recipients: list[age.PublicRecipient],
    lease: _Lease,
    copy: Path | None = None,
) -> tuple[str, bool]:
    """Receive, check and seal in one pass under ``lease`` (vault.one_pass): the body
    is read once, and its ciphertext goes straight into a pending object in the primary
    site, committed only if the archive was accepted. The intake folder holds only the
    lease marker, and for a zip the spooled plaintext; neither outlives this call. With
    ``copy``, the accepted plaintext is kept there for build verification unless the
    deposit did not reach ``sealed``. Returns why no copy was kept (or ``""``), and
    whether the archive may hold a build recipe (``vault.build_recipe.holds_recipe_file``
    over the inspected members' names)."""
    spool = _intake_file(deposit, lease.owner, "plain")
    marker = _intake_file(deposit, lease.owner, "lease")
    attempt = lease_token(lease.owner)
    described: dict[str, Any] = {}
    copy_problem = ""
    holds_recipe = True

    def describe(report: ArchiveReport) -> None:
        described["manifest"] = build_manifest(
            product=deposit.product.slug,
            version=deposit.version,
            pipeline=deposit.pipeline,
            report=report,
            created_at=timezone.now(),
            sealed_for=[recipient.to_string() for recipient in recipients],
        )

    try:
        settings.ESCROW_INTAKE_DIR.mkdir(parents=True, exist_ok=True)
        marker.touch(exist_ok=False)
        lease.marker = marker
        lease.mark()
        primary = all_sites()[0]
        sealed = seal_in_one_pass(
            body,
            recipients=recipients,
            pending=primary.begin_put(deposit.object_key(DepositCopy.Kind.SEALED, attempt=attempt)),
            limits=_archive_limits(),
            claimed_sha256=deposit.archive_sha256,
            spool=spool,
            tick=lease.keep,
            before_commit=describe,
            copy=copy,
        )
        copy_problem = sealed.copy_problem
        holds_recipe = holds_recipe_file(member.path for member in sealed.report.members)
        logger.info(
            "one-pass timings %s",
            json.dumps(
                {
                    "deposit": deposit.pk,
                    "bytes": sealed.report.size,
                    "body": type(body).__name__,
                    "busy_s": {name: round(value, 3) for name, value in sealed.timings.items()},
                    "cpu_s": {name: round(value, 3) for name, value in sealed.cpu.items()},
                }
            ),
        )
        _record_sealed(deposit, sealed, described["manifest"], recipients, lease, attempt)
    except BodyTooLarge:
        lease.keep(now=True)
        limit = settings.ESCROW_MAX_ARCHIVE_BYTES
        deposit_reject(
            deposit=deposit,
            problem=f"too_large_archive: the body is larger than {limit} bytes.",
        )
    except BodyMismatch as mismatch:
        lease.keep(now=True)
        Deposit.objects.filter(pk=deposit.pk).update(archive_size=mismatch.size)
        deposit.archive_size = mismatch.size
        deposit_reject(
            deposit=deposit,
            problem=(
                f"sha256_mismatch: the body's SHA-256 is {mismatch.sha256}, not "
                f"{deposit.archive_sha256} as X-Archive-SHA256 says; the upload was "
                "damaged or the header is wrong."
            ),
        )
    except ArchiveRejected as rejected:
        lease.keep(now=True)
        deposit_reject(deposit=deposit, problem=f"{rejected.code}: {rejected}")
    except ManifestError as error:
        lease.keep(now=True)
        deposit_reject(deposit=deposit, problem=f"bad_metadata: {error}")
    except SiteError as error:
        lease.keep(now=True)
        deposit_fail(
            deposit=deposit,
            problem=(
                f"store: {error}. Nothing of this upload was kept; "
                "upload the same archive again once the site is back."
            ),
            tell_staff=True,
        )
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            problem = (
                f"{INTAKE_FULL}: the intake folder is full ({error.strerror}); nothing of "
                "this upload was kept. Upload the same archive again later."
            )
        else:
            problem = f"intake: {error}"
        lease.keep(now=True)
        deposit_fail(deposit=deposit, problem=problem, tell_staff=True)
    finally:
        spool.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        if copy is not None and deposit.state != DepositState.SEALED:
            copy.unlink(missing_ok=True)
    return copy_problem, holds_recipe


def _record_sealed(
    deposit: Deposit,
    sealed: Sealed,
    manifest: dict[str, Any],
    recipients: list[age.PublicRecipient],
    lease: _Lease,
    attempt: str,
) -> None:
    """After the pass: sign the manifest, put it beside the sealed file in the primary
    and record ``verified`` then ``sealed``. A primary that refuses the manifest fails
    the deposit (the sealed object stays under this attempt's key, unused; the upload
    again resumes)."""
    lease.keep(now=True)
    Deposit.objects.filter(pk=deposit.pk).update(archive_size=sealed.report.size)
    deposit.archive_size = sealed.report.size
    deposit_verify(
        deposit=deposit,
        manifest=_manifest_summary(manifest),
        manifest_sha256=manifest_sha256(manifest),
        signature=sign_manifest(manifest, system_signing_key()),
    )
    manifest_bytes = canonical_json(manifest)
    all_sites()[0].put(
        deposit.object_key(DepositCopy.Kind.MANIFEST, attempt=attempt),
        io.BytesIO(manifest_bytes),
        sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        size=len(manifest_bytes),
    )
    lease.keep(now=True)
    deposit_seal(
        deposit=deposit,
        ciphertext_sha256=sealed.ciphertext_sha256,
        ciphertext_size=sealed.ciphertext_size,
        sealed_for=[r.to_string() for r in recipients],
        attempt=attempt,
    )


def _manifest_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without its member list (which can run to 200,000 rows): what the
    database keeps. The full, signed manifest is stored next to the sealed file."""
    summary = {key: value for key, value in manifest.items() if key != "members"}
    summary["member_count"] = len(manifest.get("members", []))
    return summary


def _copy_in(
    site: StorageSiteClient, deposit: Deposit, kind: str, sha256: str, *, read_back: bool = True
) -> DepositCopy:
    """The copy of one sealed part the primary holds. Read back and checked against the
    recorded hash (``verified_at`` set), or, for a sealed file this process has just
    written and fsynced with its hash computed on the way, only found at its size: its
    read-back is replication's first step (``verified_at`` stays empty until then)."""
    key = deposit.object_key(kind)
    found = site.stat(key)
    if found is None:
        raise SiteError(f"{key} is not in the site", site=site.name)
    if read_back:
        actual = found.sha256 or site.hash(key)
        if actual != sha256:
            raise SiteError(f"{key} has SHA-256 {actual}, not {sha256} as recorded", site=site.name)
    elif found.size != deposit.ciphertext_size:
        raise SiteError(
            f"{key} is {found.size} bytes, not {deposit.ciphertext_size} as written",
            site=site.name,
        )
    return DepositCopy(
        deposit=deposit,
        site=site.name,
        kind=kind,
        key=key,
        version_id=found.version_id or "",
        sha256=sha256,
        size=found.size,
        verified_at=timezone.now() if read_back else None,
    )


def deposit_store_sealed(
    *,
    deposit: Deposit,
    lease_owner: str = "",
    just_written: bool = False,
    verify_copy: Path | None = None,
    copy_problem: str = "",
    archive_holds_recipe: bool = True,
) -> Deposit:
    """Store a sealed deposit, on any machine: check the sealed file and manifest that
    sealing put in the primary site, put the signature, record the three copies and
    queue replication. The sealed file is read back unless this process has
    ``just_written`` it (see ``_copy_in``). Runs under ``lease_owner``'s lease (a new one when
    empty, as from the task); a deposit another live process works on is left alone,
    so a redelivered task is harmless. A site that fails leaves the deposit ``failed``
    with the reason, and staff are told; a retry stores it from the site.

    Once stored, its build verification is recorded in the same transaction (with
    ``ESCROW_VERIFY_ENABLED``): from ``verify_copy``, the intake copy the receiving
    process kept, queued for after the answer on this machine; without one (stored
    by another process) ``interrupted``, ``copy_problem`` saying why if known; with
    neither a recipe file in the archive (``archive_holds_recipe``) nor one set for the
    product, ``no_recipe`` at once (``verification_open``)."""
    owner = lease_owner or lease_owner_new()
    if not deposit_lease_take(deposit=deposit, owner=owner):
        return deposit
    primary = all_sites()[0]
    if not deposit.seal_attempt:
        return deposit_fail(
            deposit=deposit,
            problem=(
                "store: the sealed file was kept only in the outbox of the machine that "
                "received it (sealed before sealed files went to the primary site); the "
                "pipeline must upload the archive again."
            ),
            tell_staff=True,
        )
    signature = deposit.manifest_signature.encode()
    try:
        copies = [
            _copy_in(
                primary,
                deposit,
                DepositCopy.Kind.SEALED,
                deposit.ciphertext_sha256,
                read_back=not just_written,
            ),
            _copy_in(primary, deposit, DepositCopy.Kind.MANIFEST, deposit.manifest_sha256),
            _put(
                primary,
                deposit,
                DepositCopy.Kind.SIGNATURE,
                io.BytesIO(signature),
                hashlib.sha256(signature).hexdigest(),
                len(signature),
            ),
        ]
    except SiteError as error:
        return deposit_fail(deposit=deposit, problem=f"store: {error}", tell_staff=True)
    with transaction.atomic():
        # Rows of an earlier attempt's objects (one whose sealed file the primary damaged)
        # describe copies that are no longer the deposit's; the objects stay in the sites.
        DepositCopy.objects.filter(deposit=deposit).exclude(
            key__in=[copy.key for copy in copies]
        ).delete()
        for copy in copies:
            DepositCopy.objects.update_or_create(
                deposit=deposit,
                site=copy.site,
                kind=copy.kind,
                defaults={
                    "key": copy.key,
                    "version_id": copy.version_id,
                    "sha256": copy.sha256,
                    "size": copy.size,
                    "verified_at": copy.verified_at,
                },
            )
        deposit_store(deposit=deposit)
        deposit_lease_hand_on(
            deposit=deposit,
            task_name="escrow.deposit_replicate_copies",
            seconds=settings.ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS,
        )
        enqueue_on_commit(
            "escrow.deposit_replicate_copies", after_answer=True, deposit_id=deposit.pk
        )
        if settings.ESCROW_VERIFY_ENABLED:
            _verification_open(deposit, owner, verify_copy, copy_problem, archive_holds_recipe)
    return deposit


def _verification_open(
    deposit: Deposit,
    owner: str,
    copy: Path | None,
    copy_problem: str,
    archive_holds_recipe: bool,
) -> None:
    """Record the stored deposit's build verification and queue its build, after the
    answer, on this machine's verification queue (verification.routing)."""
    has_copy = copy is not None and copy.is_file()
    record, queue_it = verification_open(
        deposit_id=deposit.pk,
        product_id=deposit.product_id,
        lease_owner=owner,
        has_copy=has_copy,
        problem=copy_problem,
        archive_holds_recipe=archive_holds_recipe,
    )
    if queue_it:
        enqueue_on_commit(
            "escrow.deposit_build_verify", after_answer=True, verification_id=record.pk
        )


def _put(
    site: StorageSiteClient,
    deposit: Deposit,
    kind: str,
    source: BinaryIO,
    sha256: str,
    size: int,
) -> DepositCopy:
    key = deposit.object_key(kind)
    stored = site.put(key, source, sha256=sha256, size=size)
    return DepositCopy(
        deposit=deposit,
        site=site.name,
        kind=kind,
        key=key,
        version_id=stored.version_id or "",
        sha256=sha256,
        size=size,
        verified_at=timezone.now(),
    )
