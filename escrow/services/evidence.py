"""Claim evidence: checked by content, sealed with age, stored in the sites.

Documents are sealed to every notary key and to the system's evidence key, so
the notary can open them without this software and the portal can show them
to the claimant and the vendor. They are never publicly reachable: every view
goes through the app, behind a role check or an expiring link."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.core.exceptions import ValidationError

from escrow.models import ClaimEvidence
from escrow.services.recipients import evidence_recipients
from records.models import StoredFile
from records.services.files import stored_file_put
from vault import age
from vault.keys import NoNotaryRecipient, evidence_identity
from vault.site_clients import all_sites
from vault.sites import SiteError

logger = logging.getLogger(__name__)

# Recognised by their first bytes; what the browser claims the type is does not count.
SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
EXTENSIONS = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}
# Uploads are only ever read this much at a time: never whole into memory.
CHUNK_SIZE = 64 * 1024
_HEAD_SIZE = max(len(signature) for signatures in SIGNATURES.values() for signature in signatures)


@dataclass(frozen=True)
class Upload:
    """A document as received: its name as given, and its content: bytes, or a
    seekable file (an upload Django spooled to a temporary file), read in chunks."""

    name: str
    content: bytes | BinaryIO

    def chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """The content from its start, in chunks of at most 64 KiB; with ``limit``,
        stopping once one byte more than ``limit`` has been read."""
        stream = _stream(self)
        remaining = -1 if limit is None else limit + 1
        while remaining:
            chunk = stream.read(CHUNK_SIZE if remaining < 0 else min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            if remaining > 0:
                remaining -= len(chunk)
            yield chunk


def _stream(upload: Upload) -> BinaryIO:
    if isinstance(upload.content, bytes):
        return io.BytesIO(upload.content)
    upload.content.seek(0)
    return upload.content


def _measured(upload: Upload, limit: int) -> int:
    """The upload's size, counted while streaming; refused once it passes ``limit``."""
    size = sum(len(chunk) for chunk in upload.chunks(limit))
    if size > limit:
        raise ValidationError(f"{_safe_name(upload.name)} is larger than {_size(limit)}.")
    return size


def read_upload(file: BinaryIO, name: str, *, limit: int | None = None) -> Upload:
    """Take an uploaded file as it is (not read into memory), refusing it as soon as
    counting it in chunks passes the size limit."""
    upload = Upload(name=name, content=file)
    _measured(upload, limit or settings.ESCROW_EVIDENCE_MAX_BYTES)
    file.seek(0)
    return upload


def _size(limit: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return str(filesizeformat(limit)).replace("\xa0", " ")


def _safe_name(name: str) -> str:
    """A display name: last path part, printable, no more than 120 characters."""
    base = re.split(r"[\\\\/]", name)[-1]
    cleaned = "".join(c for c in unicodedata.normalize("NFC", base) if c.isprintable())
    return cleaned.strip()[:120] or "document"


def _content_type_of(upload: Upload) -> str:
    head = _stream(upload).read(_HEAD_SIZE)
    for content_type, signatures in SIGNATURES.items():
        if head.startswith(signatures):
            return content_type
    raise ValidationError(
        f"{_safe_name(upload.name)} is not a PDF, PNG or JPEG document (judged by its content)."
    )


def check_uploads(uploads: list[Upload]) -> list[tuple[Upload, str]]:
    """Refuse the whole set if any document is of the wrong type, empty or too large.
    The count is checked before any document is read, each size while counting it in
    chunks."""
    check_count(len(uploads))
    checked = []
    for upload in uploads:
        if not _measured(upload, settings.ESCROW_EVIDENCE_MAX_BYTES):
            raise ValidationError(f"{_safe_name(upload.name)} is empty.")
        checked.append((upload, _content_type_of(upload)))
    return checked


def check_count(count: int) -> None:
    """Refuse more documents than ESCROW_EVIDENCE_MAX_FILES, naming the limit."""
    if count > settings.ESCROW_EVIDENCE_MAX_FILES:
        raise ValidationError(too_many_documents_message())


def too_many_documents_message() -> str:
    limit = settings.ESCROW_EVIDENCE_MAX_FILES
    return f"At most {limit} documents at once."


class EvidenceNotStored(ValidationError):
    """The documents could not be sealed or stored (a storage site or the disk failed).
    The caller has changed nothing yet; the person is asked to try again later."""


def evidence_seal(
    *, uploads: list[tuple[Upload, str]], claim_id: int | None = None
) -> list[ClaimEvidence]:
    """Seal and store checked documents; returns unsaved rows for the caller's
    transaction. Storage happens first and outside any transaction, so a claim or a
    state change is only ever recorded with its evidence already stored; a failure
    after it leaves an unreferenced sealed object, never a row without one.

    A new claim has no id yet: its documents go under a key of their own
    (``evidence/filing-<random>/``). A failing site or disk raises
    ``EvidenceNotStored`` (a ``ValidationError`` that says to try again)."""
    if not uploads:
        return []
    try:
        recipients = evidence_recipients()
    except NoNotaryRecipient as missing:
        raise ValidationError(f"Evidence cannot be accepted now: {missing}") from missing
    folder = str(claim_id) if claim_id is not None else f"filing-{uuid.uuid4().hex}"
    try:
        return [
            _seal_one(upload, content_type, folder, recipients) for upload, content_type in uploads
        ]
    except (SiteError, OSError) as error:
        logger.warning("evidence could not be stored: %s", error)
        raise EvidenceNotStored(
            "Your documents could not be stored just now (the document store is not "
            "answering). Nothing was recorded; please try again in a few minutes."
        ) from error


def _seal_one(
    upload: Upload, content_type: str, folder: str, recipients: list[Any]
) -> ClaimEvidence:
    name = _safe_name(upload.name)
    if not name.lower().endswith(EXTENSIONS[content_type]):
        name += EXTENSIONS[content_type]
    # Sealed from the upload's stream, chunk by chunk, into a temporary file of
    # ciphertext; the plaintext is hashed and counted on the way through.
    source = _Counted(_stream(upload), limit=settings.ESCROW_EVIDENCE_MAX_BYTES, name=name)
    Path(settings.ESCROW_INTAKE_DIR).mkdir(parents=True, exist_ok=True)
    intake = settings.ESCROW_INTAKE_DIR
    with tempfile.NamedTemporaryFile(prefix="evidence-", suffix=".age", dir=intake) as sealed:
        age.encrypt(cast(BinaryIO, source), cast(BinaryIO, sealed), recipients)
        sealed.flush()
        stored = stored_file_put(
            key=f"evidence/{folder}/{uuid.uuid4().hex}.age",
            source=Path(sealed.name),
            purpose=StoredFile.Purpose.EVIDENCE,
            content_type="application/octet-stream",
            filename=f"{name}.age",
        )
    return ClaimEvidence(
        filename=name,
        content_type=content_type,
        size=source.size,
        sha256=source.digest.hexdigest(),
        key=stored.key,
        sealed_sha256=stored.sha256,
        sealed_size=stored.size,
    )


class _Counted:
    """A read-only view of a stream that hashes and counts what passes through it,
    gives at most 64 KiB a call, and refuses to pass more than ``limit`` bytes (an
    upload that changed since it was checked)."""

    def __init__(self, stream: BinaryIO, *, limit: int, name: str) -> None:
        self._stream, self._limit, self._name = stream, limit, name
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        wanted = CHUNK_SIZE if size is None or size < 0 else min(size, CHUNK_SIZE)
        chunk = self._stream.read(wanted)
        self.size += len(chunk)
        if self.size > self._limit:
            raise ValidationError(f"{self._name} is larger than {_size(self._limit)}.")
        self.digest.update(chunk)
        return chunk


def evidence_open(evidence: ClaimEvidence) -> bytes:
    """The document, decrypted with the system's evidence key and checked against its hash."""
    with all_sites()[0].open(evidence.key) as stream:
        sealed = stream.read(evidence.sealed_size + 1)
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), plain, [evidence_identity()])
    content = plain.getvalue()
    if hashlib.sha256(content).hexdigest() != evidence.sha256:
        raise ValidationError(f"{evidence.filename} does not match its recorded hash.")
    return content
