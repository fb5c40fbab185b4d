"""Claim evidence: checked by content, sealed with age, stored in the sites.

Documents are sealed to every notary key and to the system's evidence key, so
the notary can open them without this software and the portal can show them
to the claimant and the vendor. They are never publicly reachable: every view
goes through the app, behind a role check or an expiring link."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError

from escrow.models import ClaimEvidence
from escrow.services.recipients import evidence_recipients
from records.models import StoredFile
from records.services.files import stored_file_put
from vault import age
from vault.keys import NoNotaryRecipient, evidence_identity
from vault.site_clients import all_sites

# Recognised by their first bytes; what the browser claims the type is does not count.
SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
EXTENSIONS = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}


@dataclass(frozen=True)
class Upload:
    """A document as received: its name as given, and its content."""

    name: str
    content: bytes


def read_upload(file: BinaryIO, name: str, *, limit: int | None = None) -> Upload:
    """Read an uploaded file, refusing it as soon as it passes the size limit."""
    limit = limit or settings.ESCROW_EVIDENCE_MAX_BYTES
    content = file.read(limit + 1)
    if len(content) > limit:
        raise ValidationError(f"{_safe_name(name)} is larger than {_size(limit)}.")
    return Upload(name=name, content=content)


def _size(limit: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return str(filesizeformat(limit)).replace("\xa0", " ")


def _safe_name(name: str) -> str:
    """A display name: last path part, printable, no more than 120 characters."""
    base = re.split(r"[\\\\/]", name)[-1]
    cleaned = "".join(c for c in unicodedata.normalize("NFC", base) if c.isprintable())
    return cleaned.strip()[:120] or "document"


def _content_type_of(upload: Upload) -> str:
    for content_type, signatures in SIGNATURES.items():
        if upload.content.startswith(signatures):
            return content_type
    raise ValidationError(
        f"{_safe_name(upload.name)} is not a PDF, PNG or JPEG document (judged by its content)."
    )


def check_uploads(uploads: list[Upload]) -> list[tuple[Upload, str]]:
    """Refuse the whole set if any document is of the wrong type, empty or too large."""
    if len(uploads) > settings.ESCROW_EVIDENCE_MAX_FILES:
        raise ValidationError(f"At most {settings.ESCROW_EVIDENCE_MAX_FILES} documents at once.")
    checked = []
    for upload in uploads:
        if not upload.content:
            raise ValidationError(f"{_safe_name(upload.name)} is empty.")
        if len(upload.content) > settings.ESCROW_EVIDENCE_MAX_BYTES:
            raise ValidationError(
                f"{_safe_name(upload.name)} is larger than "
                f"{_size(settings.ESCROW_EVIDENCE_MAX_BYTES)}."
            )
        checked.append((upload, _content_type_of(upload)))
    return checked


def evidence_seal(*, claim_id: int, uploads: list[tuple[Upload, str]]) -> list[ClaimEvidence]:
    """Seal and store checked documents; returns unsaved rows for the caller's
    transaction. Storage happens first and outside any transaction; a failure
    after it leaves an unreferenced sealed object, never a row without one."""
    if not uploads:
        return []
    try:
        recipients = evidence_recipients()
    except NoNotaryRecipient as missing:
        raise ValidationError(f"Evidence cannot be accepted now: {missing}") from missing
    rows = []
    for upload, content_type in uploads:
        sealed = io.BytesIO()
        age.encrypt(io.BytesIO(upload.content), sealed, recipients)
        name = _safe_name(upload.name)
        if not name.lower().endswith(EXTENSIONS[content_type]):
            name += EXTENSIONS[content_type]
        stored = stored_file_put(
            key=f"evidence/{claim_id}/{uuid.uuid4().hex}.age",
            source=sealed.getvalue(),
            purpose=StoredFile.Purpose.EVIDENCE,
            content_type="application/octet-stream",
            filename=f"{name}.age",
        )
        rows.append(
            ClaimEvidence(
                filename=name,
                content_type=content_type,
                size=len(upload.content),
                sha256=hashlib.sha256(upload.content).hexdigest(),
                key=stored.key,
                sealed_sha256=stored.sha256,
                sealed_size=stored.size,
            )
        )
    return rows


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
