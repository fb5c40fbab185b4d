"""PDF rendering: a template and its context become a PDF that says what the context says."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.template import TemplateDoesNotExist
from pypdf import PdfReader

from records.pdf import pdf_render

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def pdf_text(data: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def letter_context(reasons: str) -> dict[str, object]:
    """What the release letter needs, as plain objects (no database)."""
    product = SimpleNamespace(name="Ledger Pro")
    deposit = SimpleNamespace(
        product=product,
        version="3.1.4",
        created_at=datetime(2026, 2, 3, tzinfo=UTC),
        archive_size=2048,
        archive_sha256=SHA,
        manifest_sha256="b" * 64,
        manifest_signature="sig",
    )
    claim = SimpleNamespace(
        pk=42,
        claimant=SimpleNamespace(name="Northwind Logistics B.V."),
        decided_by=SimpleNamespace(full_name="Mr. N. Otary"),
        get_condition_display="Insolvency",
        decision_reasons=reasons,
    )
    release = SimpleNamespace(
        released_at=datetime(2026, 3, 5, tzinfo=UTC), released_size=4096, recipient=""
    )
    return {
        "claim": claim,
        "deposit": deposit,
        "release": release,
        "manifest": {"archive": {"format": "tar.gz"}, "member_count": 12},
        "completeness": {"files": 12, "warnings": []},
    }


def test_a_template_becomes_a_pdf_that_says_what_its_context_says() -> None:
    data = pdf_render(
        template="certificates/release_letter.html",
        context=letter_context("The court ruling proves the insolvency."),
    )
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert "Release letter" in text
    assert "Northwind Logistics B.V." in text
    assert "Ledger Pro 3.1.4" in text
    assert "claim #42" in text
    assert "05 March 2026" in text
    assert SHA[:32] in text.replace("\n", "")
    assert "The court ruling proves the insolvency." in text.replace("\n", " ")


def test_markup_in_the_context_is_printed_as_text_not_obeyed() -> None:
    data = pdf_render(
        template="certificates/release_letter.html",
        context=letter_context("<h1>Approved</h1> & done"),
    )
    text = pdf_text(data)
    assert "<h1>Approved</h1> & done" in text.replace("\n", " ")


def test_an_unknown_template_is_an_error_not_an_empty_pdf() -> None:
    with pytest.raises(TemplateDoesNotExist):
        pdf_render(template="certificates/no-such-template.html", context={})
