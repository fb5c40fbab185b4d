"""Claim evidence: read with a size limit, judged by content, sealed with age, opened back."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from escrow.models import ClaimEvidence, NotaryRecipient
from escrow.services.evidence import (
    Upload,
    check_uploads,
    evidence_open,
    evidence_seal,
    read_upload,
)
from records.models import StoredFile
from vault import age

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20) + b"\xff\xd9"
HTML = b"<!doctype html><script>alert('pwned')</script>\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(48)


def primary_folder() -> Path:
    return Path(settings.ESCROW_SITES[0]["path"])


def decrypted(sealed: bytes, identity: age.X25519Identity) -> bytes:
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), plain, [identity])
    return plain.getvalue()


# --- read_upload ------------------------------------------------------------------


def test_an_upload_within_the_limit_is_kept_whole_as_its_stream_not_copied() -> None:
    stream = io.BytesIO(PDF)
    upload = read_upload(stream, "ruling.pdf", limit=len(PDF))
    assert upload == Upload(name="ruling.pdf", content=stream)
    assert b"".join(upload.chunks()) == PDF


def test_an_upload_past_the_limit_is_refused_naming_the_file_and_the_limit() -> None:
    stream = io.BytesIO(PDF + b"0" * 2048)
    with pytest.raises(ValidationError, match=r"^\['big\.pdf is larger than 1\.0 KB\.'\]$"):
        read_upload(stream, "C:\\Users\\alice\\big.pdf", limit=1024)
    # It stopped reading just past the limit instead of taking the whole body.
    assert stream.tell() == 1025


def test_without_a_limit_the_configured_evidence_limit_applies(settings) -> None:
    settings.ESCROW_EVIDENCE_MAX_BYTES = 10
    assert b"".join(read_upload(io.BytesIO(b"x" * 10), "ten.pdf").chunks()) == b"x" * 10
    with pytest.raises(ValidationError, match=r"eleven\.pdf is larger than 10 bytes"):
        read_upload(io.BytesIO(b"x" * 11), "eleven.pdf")


# --- check_uploads ----------------------------------------------------------------


def test_pdf_png_and_jpeg_are_recognised_by_their_content_not_their_name() -> None:
    uploads = [Upload("scan.txt", PDF), Upload("photo.pdf", PNG), Upload("letter", JPEG)]
    checked = check_uploads(uploads)
    assert checked == [
        (uploads[0], "application/pdf"),
        (uploads[1], "image/png"),
        (uploads[2], "image/jpeg"),
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [("ruling.pdf", HTML), ("invoice.pdf", EXE), ("notes.pdf", b"I promise this is a PDF.\n")],
)
def test_a_document_disguised_with_a_pdf_name_is_refused_by_name(name, content) -> None:
    with pytest.raises(ValidationError) as refused:
        check_uploads([Upload("good.pdf", PDF), Upload(name, content)])
    assert refused.value.messages == [
        f"{name} is not a PDF, PNG or JPEG document (judged by its content)."
    ]


def test_an_empty_document_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"ruling\.pdf is empty"):
        check_uploads([Upload("ruling.pdf", b"")])


def test_an_oversize_document_is_refused(settings) -> None:
    settings.ESCROW_EVIDENCE_MAX_BYTES = 1024
    assert check_uploads([Upload("exact.pdf", PDF + b"0" * (1024 - len(PDF)))])
    with pytest.raises(ValidationError, match=r"big\.pdf is larger than 1\.0 KB"):
        check_uploads([Upload("big.pdf", PDF + b"0" * 1024)])


def test_more_documents_than_allowed_are_refused_as_a_set(settings) -> None:
    settings.ESCROW_EVIDENCE_MAX_FILES = 2
    assert len(check_uploads([Upload(f"p{n}.pdf", PDF) for n in range(2)])) == 2
    with pytest.raises(ValidationError, match="At most 2 documents at once"):
        check_uploads([Upload(f"p{n}.pdf", PDF) for n in range(3)])


def test_a_hostile_file_name_is_shown_cleaned() -> None:
    with pytest.raises(ValidationError) as refused:
        check_uploads([Upload("../../etc/\x1bevil\x07.pdf", HTML)])
    message = refused.value.messages[0]
    assert message.startswith("evil.pdf is not a PDF")
    assert "\x1b" not in message and "../" not in message


# --- evidence_seal and evidence_open ----------------------------------------------


def seal(claim_id: int, documents: dict[str, bytes]) -> list[ClaimEvidence]:
    checked = check_uploads([Upload(name, content) for name, content in documents.items()])
    return evidence_seal(claim_id=claim_id, uploads=checked)


def test_sealed_evidence_is_stored_as_age_ciphertext_and_opens_to_the_same_bytes(
    notary_identity,
) -> None:
    rows = seal(7, {"ruling.pdf": PDF, "photo": PNG})
    assert [(row.filename, row.content_type, row.size) for row in rows] == [
        ("ruling.pdf", "application/pdf", len(PDF)),
        ("photo.png", "image/png", len(PNG)),
    ]
    for row, original in zip(rows, (PDF, PNG), strict=True):
        assert row.pk is None  # the caller saves the rows in its own transaction
        assert row.key.startswith("evidence/7/") and row.key.endswith(".age")
        assert row.sha256 == hashlib.sha256(original).hexdigest()
        stored = (primary_folder() / row.key).read_bytes()
        assert stored.startswith(b"age-encryption.org/v1\n")
        assert original not in stored
        assert (row.sealed_sha256, row.sealed_size) == (
            hashlib.sha256(stored).hexdigest(),
            len(stored),
        )
        # The system opens it with its evidence key, the notary with its own key.
        assert evidence_open(row) == original
        assert decrypted(stored, notary_identity) == original
    assert StoredFile.objects.filter(purpose="evidence").count() == 2


def test_evidence_whose_recorded_hash_differs_does_not_open(notary_identity) -> None:
    (row,) = seal(8, {"ruling.pdf": PDF})
    row.sha256 = hashlib.sha256(b"another document").hexdigest()
    with pytest.raises(ValidationError, match=r"ruling\.pdf does not match its recorded hash"):
        evidence_open(row)


def test_without_an_active_notary_key_no_evidence_is_sealed_or_stored(notary_identity) -> None:
    NotaryRecipient.objects.update(is_active=False)
    with pytest.raises(ValidationError, match="Evidence cannot be accepted now: No active notary"):
        seal(9, {"ruling.pdf": PDF})
    assert not StoredFile.objects.exists()
    assert not (primary_folder() / "evidence").exists()


def test_sealing_nothing_stores_nothing(db) -> None:
    assert evidence_seal(claim_id=10, uploads=[]) == []
    assert not StoredFile.objects.exists()
