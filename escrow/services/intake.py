"""From the release pipeline's upload to a sealed file in the primary site.

The steps that need the plaintext (receive, check, seal) run in the process
that received the upload, so the source never leaves that machine and never
rests outside one temporary file in ESCROW_INTAKE_DIR, removed when sealing
ends, also on failure. The sealed file waits in the outbox (it is encrypted,
so it may rest on disk) until the primary site holds a verified copy; from
then on Celery tasks replicate it from the primary.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from escrow.models import Deposit, DepositCopy, DepositState, DepositToken
from escrow.models.deposits import version_validator
from escrow.services.deposits import (
    deposit_fail,
    deposit_register,
    deposit_reject,
    deposit_resume_upload,
    deposit_retry,
    deposit_seal,
    deposit_store,
    deposit_verify,
)
from escrow.services.recipients import seal_recipients
from records.queue import enqueue_on_commit
from vault import age
from vault.archive import ArchiveLimits, ArchiveRejected, inspect_archive
from vault.keys import system_signing_key
from vault.manifest import (
    ManifestError,
    build_manifest,
    canonical_json,
    manifest_sha256,
    sign_manifest,
)
from vault.site_clients import all_sites
from vault.sites import SiteError, StorageSiteClient

logger = logging.getLogger(__name__)
CHUNK = 1024 * 1024
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class DepositRefused(Exception):
    """The request itself is wrong (a header, the version); nothing was recorded."""


class DepositConflict(Exception):
    """The version was already deposited with other content; a version never changes."""

    def __init__(self, message: str, *, existing: Deposit):
        super().__init__(message)
        self.existing = existing


@dataclass(frozen=True)
class Received:
    deposit: Deposit
    created: bool


def _archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_archive_bytes=settings.ESCROW_MAX_ARCHIVE_BYTES,
        max_members=settings.ESCROW_MAX_MEMBERS,
        max_expanded_bytes=settings.ESCROW_MAX_EXPANDED_BYTES,
        max_ratio=float(settings.ESCROW_MAX_EXPANSION_RATIO),
    )


def _outbox_path(deposit: Deposit) -> Path:
    return settings.ESCROW_INTAKE_DIR / "outbox" / f"deposit-{deposit.pk}.age"


class _HashingWriter:
    """Writes through to a file while hashing and counting what passes."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.file.write(data)


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


def _open_or_resume(
    token: DepositToken, version: str, claimed_sha256: str, pipeline: Mapping[str, str]
) -> Received | None:
    """The deposit this upload continues, or ``None`` when a new one must be recorded."""
    existing = _existing(token, version)
    if existing is None:
        return None
    if existing.archive_sha256 != claimed_sha256:
        raise DepositConflict(
            f"{token.product.slug} {version} was already deposited with SHA-256 "
            f"{existing.archive_sha256}; a deposited version never changes.",
            existing=existing,
        )
    if existing.state == DepositState.FAILED and existing.failed_from in (
        DepositState.RECEIVED,
        DepositState.VERIFIED,
    ):
        # It failed before anything was sealed: this upload brings the source again.
        deposit_resume_upload(
            deposit=existing,
            actor_label=f"token:{token.prefix}",
            reason="the pipeline uploaded the same archive again",
        )
        return Received(existing, created=True)
    if existing.state == DepositState.FAILED:
        # Sealed or stored already: retry the failed step from what is kept.
        deposit_retry(
            deposit=existing, actor=None, reason="the pipeline uploaded the same archive again"
        )
    return Received(existing, created=False)


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

    Returns the existing deposit (``created=False``) when the same archive was
    already deposited; raises ``DepositConflict`` for other content under the
    same version and ``DepositRefused`` for a malformed request. A bad archive
    ends as a ``rejected`` deposit naming the problem; an unreachable primary
    site as a ``failed`` one that can be retried.

    Longer than most because every early exit must remove the intake file and
    record the same way; the steps themselves are the helpers it calls."""
    claimed_sha256 = claimed_sha256.strip().lower()
    _validate_request(version, claimed_sha256, pipeline)
    recipients = seal_recipients()  # before reading anything: no key, no deposit
    label = f"token:{token.prefix}"
    received = _open_or_resume(token, version, claimed_sha256, pipeline)
    if received is None:
        try:
            deposit = deposit_register(
                product=token.product,
                version=version,
                archive_sha256=claimed_sha256,
                token=token,
                pipeline=pipeline,
                actor_label=label,
            )
        except (IntegrityError, ValidationError):
            # Another upload of the same version won the race; answer as for a retry.
            raced = _open_or_resume(token, version, claimed_sha256, pipeline)
            if raced is None:
                raise
            return raced
        received = Received(deposit, created=True)
    elif not received.created:
        return received

    deposit = received.deposit
    if content_length is not None and content_length > settings.ESCROW_MAX_ARCHIVE_BYTES:
        deposit_reject(
            deposit=deposit,
            problem=(
                f"too_large_archive: the body is {content_length} bytes; the limit is "
                f"{settings.ESCROW_MAX_ARCHIVE_BYTES} bytes."
            ),
        )
        return received
    _check_and_seal(deposit, body, recipients)
    if deposit.state == DepositState.SEALED:
        deposit_store_sealed(deposit=deposit)
    return received


def _check_and_seal(
    deposit: Deposit, body: BinaryIO, recipients: list[age.X25519Recipient]
) -> None:
    intake = settings.ESCROW_INTAKE_DIR
    intake.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="upload-", dir=intake)
    plaintext = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            sha256, size, complete = _stream_body(body, file)
        if not complete:
            limit = settings.ESCROW_MAX_ARCHIVE_BYTES
            deposit_reject(
                deposit=deposit,
                problem=f"too_large_archive: the body is larger than {limit} bytes.",
            )
            return
        Deposit.objects.filter(pk=deposit.pk).update(archive_size=size)
        deposit.archive_size = size
        if sha256 != deposit.archive_sha256:
            deposit_reject(
                deposit=deposit,
                problem=(
                    f"sha256_mismatch: the body's SHA-256 is {sha256}, not "
                    f"{deposit.archive_sha256} as X-Archive-SHA256 says; the upload was "
                    "damaged or the header is wrong."
                ),
            )
            return
        if deposit.state == DepositState.RECEIVED and not _check(deposit, plaintext, recipients):
            return
        _seal(deposit, plaintext, recipients)
    except OSError as error:
        deposit_fail(deposit=deposit, problem=f"intake: {error}")
    finally:
        plaintext.unlink(missing_ok=True)


def _stream_body(body: BinaryIO, file: BinaryIO) -> tuple[str, int, bool]:
    """Copy the request body to ``file`` in chunks, hashing it; stop past the size limit."""
    digest = hashlib.sha256()
    size = 0
    limit = settings.ESCROW_MAX_ARCHIVE_BYTES
    while chunk := body.read(CHUNK):
        size += len(chunk)
        if size > limit:
            return "", size, False
        digest.update(chunk)
        file.write(chunk)
    return digest.hexdigest(), size, True


def _check(deposit: Deposit, plaintext: Path, recipients: list[age.X25519Recipient]) -> bool:
    """Inspect the archive and describe it in a signed manifest; reject it if it is bad."""
    try:
        report = inspect_archive(
            plaintext, limits=_archive_limits(), known_sha256=deposit.archive_sha256
        )
        manifest = build_manifest(
            product=deposit.product.slug,
            version=deposit.version,
            pipeline=deposit.pipeline,
            report=report,
            created_at=timezone.now(),
            sealed_for=[recipient.to_string() for recipient in recipients],
        )
    except ArchiveRejected as rejected:
        deposit_reject(deposit=deposit, problem=f"{rejected.code}: {rejected}")
        return False
    except ManifestError as error:
        deposit_reject(deposit=deposit, problem=f"bad_metadata: {error}")
        return False
    signature = sign_manifest(manifest, system_signing_key())
    outbox = _outbox_path(deposit)
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.with_suffix(".manifest.json").write_bytes(canonical_json(manifest))
    deposit_verify(
        deposit=deposit,
        manifest=_manifest_summary(manifest),
        manifest_sha256=manifest_sha256(manifest),
        signature=signature,
    )
    return True


def _manifest_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without its member list (which can run to 200,000 rows): what the
    database keeps. The full, signed manifest is stored next to the sealed file."""
    summary = {key: value for key, value in manifest.items() if key != "members"}
    summary["member_count"] = len(manifest.get("members", []))
    return summary


def _seal(deposit: Deposit, plaintext: Path, recipients: list[age.X25519Recipient]) -> None:
    outbox = _outbox_path(deposit)
    partial = outbox.with_suffix(".partial")
    with plaintext.open("rb") as source, partial.open("wb") as target:
        writer = _HashingWriter(target)
        age.encrypt(source, writer, recipients)  # type: ignore[arg-type]
        target.flush()
        os.fsync(target.fileno())
    partial.replace(outbox)
    deposit_seal(
        deposit=deposit,
        ciphertext_sha256=writer.digest.hexdigest(),
        ciphertext_size=writer.size,
        sealed_for=[r.to_string() for r in recipients],
    )


def deposit_store_sealed(*, deposit: Deposit) -> Deposit:
    """Put the sealed file, manifest and signature in the primary site, read back and
    verified, then queue replication. An unreachable site leaves the deposit ``failed``
    with the reason; the sealed file stays in the outbox for a retry."""
    outbox = _outbox_path(deposit)
    manifest_file = outbox.with_suffix(".manifest.json")
    missing = [path for path in (outbox, manifest_file) if not path.exists()]
    if missing:
        return deposit_fail(
            deposit=deposit,
            problem=(
                f"store: {', '.join(str(path) for path in missing)} is not in this machine's "
                "outbox; the pipeline must upload the archive again."
            ),
        )
    primary = all_sites()[0]
    signature = deposit.manifest_signature.encode()
    try:
        # The expected hashes come from the database, so a sealed file or manifest
        # that changed in the outbox is refused by the site instead of stored.
        copies = [
            _put(
                primary,
                deposit,
                DepositCopy.Kind.SEALED,
                outbox,
                deposit.ciphertext_sha256,
                deposit.ciphertext_size,
            ),
            _put(
                primary,
                deposit,
                DepositCopy.Kind.MANIFEST,
                manifest_file,
                deposit.manifest_sha256,
                manifest_file.stat().st_size,
            ),
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
        return deposit_fail(deposit=deposit, problem=f"store in {primary.name}: {error}")
    with transaction.atomic():
        for copy in copies:
            copy.save()
        deposit_store(deposit=deposit)
        enqueue_on_commit("escrow.deposit_replicate_copies", deposit_id=deposit.pk)
    outbox.unlink(missing_ok=True)
    manifest_file.unlink(missing_ok=True)
    return deposit


def _put(
    site: StorageSiteClient,
    deposit: Deposit,
    kind: str,
    source: Path | BinaryIO,
    sha256: str,
    size: int | None,
) -> DepositCopy:
    if size is None:
        raise SiteError(f"{kind} of {deposit} has no recorded size", site=site.name)
    key = deposit.object_key(kind)
    if isinstance(source, Path):
        with source.open("rb") as file:
            stored = site.put(key, file, sha256=sha256, size=size)
    else:
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
