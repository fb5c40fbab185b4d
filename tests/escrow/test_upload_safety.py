"""Uploads are safe by construction, download names cannot be injected.

Through the real doors (the customer's claim form and evidence page, the vendor's
contest form) with hostile input: a file name that tries to add a second
``filename*`` parameter, more files than allowed, a file over the size limit.
Every refusal names the limit and leaves nothing behind. The sealing path is
shown to read an upload in chunks, never whole."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client
from django.utils.http import parse_header_parameters

from escrow.forms import uploads_from
from escrow.links import vendor_claim_link
from escrow.models import ClaimEvidence, ReleaseClaim
from escrow.services.claims import claim_notify_vendor
from escrow.services.evidence import (
    CHUNK_SIZE,
    check_count,
    check_uploads,
    evidence_open,
    evidence_seal,
    too_many_documents_message,
)
from records.downloads import as_download, download_name
from records.models import StoredFile
from tests.conftest import signed_in_client
from tests.factories import make_acknowledged_deposit, make_active_subscription, make_claim

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
HOSTILE = "a\"; filename*=UTF-8''evil.html; x=\".pdf"
SAFE_HEADER = 'attachment; filename="a_filename_UTF-8_evil_html_x.pdf"'
STATEMENT = "The vendor was declared bankrupt on 1 November."


# --- fixtures and helpers ---------------------------------------------------------


@pytest.fixture(autouse=True)
def upload_dir(settings: Any, tmp_path: Path) -> Path:
    """Where Django spools uploads larger than FILE_UPLOAD_MAX_MEMORY_SIZE."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


@pytest.fixture
def eligible(licence, subscriber, staff, product, notary, notary_identity) -> None:
    """Organisation A may file: an active subscription and an acknowledged deposit."""
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)


@pytest.fixture
def vendor_notified(eligible, product, subscriber) -> ReleaseClaim:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    assert claim.state == "vendor_notified"
    return claim


def site_files() -> list[Path]:
    return sorted(
        path
        for site in settings.ESCROW_SITES
        for path in Path(site["path"]).rglob("*")
        if path.is_file()
    )


def footprint() -> dict[str, Any]:
    """Everything an accepted upload would leave behind."""
    return {
        "claims": list(ReleaseClaim.objects.values_list("pk", "state")),
        "evidence": ClaimEvidence.objects.count(),
        "stored evidence": StoredFile.objects.filter(purpose="evidence").count(),
        "files in the sites": site_files(),
    }


def pdfs(count: int, size: int = len(PDF)) -> list[SimpleUploadedFile]:
    body = PDF + b"%" * (size - len(PDF))
    return [SimpleUploadedFile(f"page{n}.pdf", body) for n in range(count)]


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    """A form body as a client such as curl sends it: the file name quoted, with its
    quotes and backslashes escaped (Django's test client would not escape them)."""
    boundary = "----upload-safety-boundary"
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = (
        "".join(parts).encode()
        + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="documents"; '
            f'filename="{quoted}"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
    )
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def assert_single_safe_filename(header: str) -> None:
    assert header == SAFE_HEADER
    assert "evil.html" not in header
    assert "filename*" not in header and header.count("filename=") == 1
    disposition, parameters = parse_header_parameters(header)
    assert (disposition, parameters) == (
        "attachment",
        {"filename": "a_filename_UTF-8_evil_html_x.pdf"},
    )


# --- download names ---------------------------------------------------------------


def test_an_evidence_name_that_injects_a_filename_parameter_downloads_under_one_safe_name(
    eligible, product, subscriber
) -> None:
    customer = signed_in_client(subscriber)
    body, content_type = multipart(
        {"product": str(product.pk), "condition": "insolvency", "statement": STATEMENT},
        HOSTILE,
        PDF,
    )
    filed = customer.post("/portal/claims/", body, content_type=content_type)
    assert filed.status_code == 302, filed.content.decode()
    evidence = ClaimEvidence.objects.get()
    assert evidence.filename == HOSTILE  # the hostile name arrived intact; shown escaped

    link = customer.get(f"/portal/claims/{evidence.claim_id}/evidence/{evidence.pk}/")
    assert link["Location"].startswith("/files/evidence/")
    download = Client().get(link["Location"])
    assert download.status_code == 200
    assert download.content == PDF
    assert_single_safe_filename(download["Content-Disposition"])
    assert download["Content-Type"] == "application/pdf"
    assert download["Cache-Control"] == "private, no-store"


def test_the_vendor_s_evidence_with_an_injected_name_downloads_under_one_safe_name(
    vendor_notified,
) -> None:
    link = vendor_claim_link(claim=vendor_notified)
    body, content_type = multipart({"statement": "We are solvent."}, HOSTILE, PDF)
    contested = Client().post(link, body, content_type=content_type)
    assert contested.status_code == 302, contested.content.decode()
    evidence = ClaimEvidence.objects.get(side="vendor")
    assert evidence.filename == HOSTILE
    download = Client().get(f"{link}evidence/{evidence.pk}/", follow=True)
    assert download.content == PDF
    assert_single_safe_filename(download["Content-Disposition"])


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        (HOSTILE, "application/pdf", "a_filename_UTF-8_evil_html_x.pdf"),
        ('x"\r\nSet-Cookie: a=b\r\n.png', "image/png", "x_Set-Cookie_a_b.png"),
        ("..\\..\\windows\\evil.exe", "image/jpeg", "evil_exe.jpg"),
        ("../../etc/passwd", "application/pdf", "passwd.pdf"),
        ("invoice.html.pdf", "application/pdf", "invoice_html.pdf"),
        ("photo.PDF", "image/png", "photo.png"),
        ("Gerichtsurteil München.jpeg", "image/jpeg", "Gerichtsurteil_Munchen.jpg"),
        ("判決.pdf", "application/pdf", "document.pdf"),
        ("...", "application/pdf", "document.pdf"),
        ("", "application/zip", "document.zip"),
        ("deposit-ledger-pro-1.0.0", "application/pdf", "deposit-ledger-pro-1.0.0.pdf"),
        ("ledger-pro-2.0.0-beta-released", "application/age", "ledger-pro-2.0.0-beta-released.age"),
        ("escrow-safe", "application/zip", "escrow-safe.zip"),
        ("notes.pdf", "text/html", "notes.bin"),
        ("x" * 500 + ".pdf", "application/pdf", "x" * 100 + ".pdf"),
    ],
)
def test_download_names_keep_only_safe_characters_and_the_type_s_extension(
    name, content_type, expected
) -> None:
    assert download_name(name, content_type) == expected


def test_a_download_response_names_the_file_once_and_is_never_cached() -> None:
    response = as_download(HttpResponse(PDF), name=HOSTILE, content_type="application/pdf")
    assert_single_safe_filename(response["Content-Disposition"])
    assert response["Cache-Control"] == "private, no-store"


# --- too many files ---------------------------------------------------------------


def test_django_refuses_more_files_than_the_evidence_limit_while_parsing() -> None:
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES == settings.ESCROW_EVIDENCE_MAX_FILES == 10
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 1024**2
    assert too_many_documents_message() == "At most 10 documents at once."
    check_count(10)
    with pytest.raises(ValidationError, match=r"At most 10 documents at once\."):
        check_count(11)


def assert_refused_for_too_many(response: Any) -> None:
    assert response.status_code == 400
    page = response.content.decode()
    assert "At most 10 documents at once." in page
    assert "Nothing was stored" in page


def test_eleven_files_on_the_claim_form_are_refused_naming_the_limit_and_nothing_is_stored(
    eligible, product, subscriber
) -> None:
    before = footprint()
    response = signed_in_client(subscriber).post(
        "/portal/claims/",
        {
            "product": product.pk,
            "condition": "insolvency",
            "statement": STATEMENT,
            # Larger than FILE_UPLOAD_MAX_MEMORY_SIZE, so Django spools them to files.
            "documents": pdfs(11, size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1),
        },
    )
    assert_refused_for_too_many(response)
    assert (
        footprint()
        == before
        == {
            "claims": [],
            "evidence": 0,
            "stored evidence": 0,
            "files in the sites": [],
        }
    )


def test_ten_files_on_the_claim_form_are_the_most_accepted(eligible, product, subscriber) -> None:
    response = signed_in_client(subscriber).post(
        "/portal/claims/",
        {
            "product": product.pk,
            "condition": "insolvency",
            "statement": STATEMENT,
            "documents": pdfs(10, size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1),
        },
    )
    assert response.status_code == 302
    claim = ReleaseClaim.objects.get()
    assert claim.evidence.count() == 10
    assert {row.size for row in claim.evidence.all()} == {settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1}


def test_eleven_files_added_to_a_claim_are_refused_naming_the_limit(
    vendor_notified, subscriber
) -> None:
    before = footprint()
    response = signed_in_client(subscriber).post(
        f"/portal/claims/{vendor_notified.pk}/evidence/", {"documents": pdfs(11)}
    )
    assert_refused_for_too_many(response)
    assert footprint() == before


def test_eleven_files_on_the_vendor_contest_form_are_refused_naming_the_limit(
    vendor_notified,
) -> None:
    before = footprint()
    response = Client().post(
        vendor_claim_link(claim=vendor_notified),
        {"statement": "We are solvent.", "documents": pdfs(11)},
    )
    assert_refused_for_too_many(response)
    assert footprint() == before
    vendor_notified.refresh_from_db()
    assert vendor_notified.state == "vendor_notified"


# --- a file over the size limit ---------------------------------------------------


@pytest.fixture
def small_limit(settings: Any) -> int:
    """A limit above FILE_UPLOAD_MAX_MEMORY_SIZE: the oversize file waits on disk."""
    settings.ESCROW_EVIDENCE_MAX_BYTES = 300 * 1024
    return settings.ESCROW_EVIDENCE_MAX_BYTES


def oversize(limit: int) -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile("ruling.pdf", PDF),
        SimpleUploadedFile("big.pdf", PDF + b"%" * (limit + 1 - len(PDF))),
    ]


def test_an_oversize_file_on_the_claim_form_is_refused_naming_the_limit_and_nothing_is_stored(
    eligible, product, subscriber, small_limit, upload_dir
) -> None:
    before = footprint()
    response = signed_in_client(subscriber).post(
        "/portal/claims/",
        {
            "product": product.pk,
            "condition": "insolvency",
            "statement": STATEMENT,
            "documents": oversize(small_limit),
        },
    )
    assert response.status_code == 200
    assert "big.pdf is larger than 300.0 KB." in response.content.decode()
    assert footprint() == before
    assert list(upload_dir.iterdir()) == []  # the spooled file went with the request


def test_an_oversize_file_on_the_vendor_contest_form_is_refused_naming_the_limit(
    vendor_notified, small_limit, upload_dir
) -> None:
    before = footprint()
    response = Client().post(
        vendor_claim_link(claim=vendor_notified),
        {"statement": "We are solvent.", "documents": oversize(small_limit)},
    )
    assert response.status_code == 200
    assert "big.pdf is larger than 300.0 KB." in response.content.decode()
    assert footprint() == before
    vendor_notified.refresh_from_db()
    assert vendor_notified.state == "vendor_notified"
    assert list(upload_dir.iterdir()) == []


# --- never whole in memory --------------------------------------------------------


class ChunkedOnly(io.FileIO):
    """A file that fails any read of more than CHUNK_SIZE bytes (or of everything)."""

    largest_read = 0

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        assert size is not None and 0 <= size <= CHUNK_SIZE, f"read({size}) of an upload"
        ChunkedOnly.largest_read = max(ChunkedOnly.largest_read, size)
        return super().read(size)

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        assert len(buffer) <= CHUNK_SIZE, f"readinto of {len(buffer)} bytes"
        return super().readinto(buffer)

    def readall(self) -> bytes:
        raise AssertionError("an upload was read whole")


def test_an_upload_is_checked_and_sealed_in_chunks_never_read_whole(
    tmp_path, notary_identity
) -> None:
    size = 16 * 1024**2 + 17
    path = tmp_path / "ruling.pdf"
    with path.open("wb") as file:
        file.write(PDF)
        file.write(b"%" * (size - len(PDF)))
    with ChunkedOnly(str(path), "rb") as upload:
        tracemalloc.start()
        try:
            checked = check_uploads(uploads_from([upload]))
            (row,) = evidence_seal(claim_id=3, uploads=checked)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert 0 < ChunkedOnly.largest_read <= CHUNK_SIZE
    # Bounded by the buffers (the sites copy 1 MiB at a time), not by the document: the
    # old path held the document and its ciphertext in memory (32 MiB and more).
    assert peak < 4 * 1024**2, f"{peak} bytes allocated while sealing a 16 MiB upload"
    assert (row.size, row.content_type) == (size, "application/pdf")
    assert evidence_open(row) == path.read_bytes()
    assert not [p for p in Path(settings.ESCROW_INTAKE_DIR).rglob("*") if p.is_file()]
