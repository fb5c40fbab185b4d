"""The release letter and the deposit certificate keep every line inside the page:
long hashes and the ``sha256sum`` command wrap instead of running past the margin.
Checked on WeasyPrint's own layout of the rendered pages, not on the template text."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from django.template.loader import render_to_string
from pypdf import PdfReader

from records.pdf import pdf_render

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def letter_context(*, recipient: str = "") -> dict[str, object]:
    product = SimpleNamespace(name="Ledger Pro", slug="ledger-pro")
    deposit = SimpleNamespace(
        product=product,
        version="3.1.4",
        created_at=datetime(2026, 2, 3, tzinfo=UTC),
        archive_size=2048,
        archive_sha256=SHA,
        manifest_sha256="b" * 64,
        manifest_signature="c" * 88,
    )
    claim = SimpleNamespace(
        pk=42,
        claimant=SimpleNamespace(name="Northwind Logistics B.V."),
        decided_by=SimpleNamespace(full_name="N. Otary"),
        get_condition_display="Bankruptcy or insolvency",
        decision_reasons="The court ruling proves the insolvency.",
    )
    release = SimpleNamespace(
        released_at=datetime(2026, 3, 5, tzinfo=UTC), released_size=4096, recipient=recipient
    )
    return {
        "claim": claim,
        "deposit": deposit,
        "release": release,
        "manifest": {"archive": {"format": "tar.gz"}, "member_count": 12},
        "completeness": {"files": 12, "warnings": []},
    }


def overflowing_text(template: str, context: dict[str, Any]) -> list[str]:
    """The text of every laid-out line that ends right of its page's content area."""
    from weasyprint import HTML

    document = HTML(string=render_to_string(template, context)).render()
    found = []
    for page in document.pages:
        box = page._page_box
        right = box.content_box_x() + box.width
        for child in box.descendants():
            text = getattr(child, "text", None)
            if text and child.position_x + child.width > right + 0.5:
                found.append(text)
    return found


def test_the_layout_check_sees_a_line_that_runs_past_the_margin(tmp_path, settings) -> None:
    # Guards the check itself: an unbreakable line in a <pre> must be found.
    (tmp_path / "too-wide.html").write_text("<html><body><pre>{{ line }}</pre></body></html>")
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}
    ]
    assert overflowing_text("too-wide.html", {"line": "y" * 300}) == ["y" * 300]


def test_every_line_of_the_release_letter_stays_inside_the_page() -> None:
    for recipient in ("", "age1" + "q" * 58):
        context = letter_context(recipient=recipient)
        assert overflowing_text("certificates/release_letter.html", context) == []


def test_the_release_letter_still_gives_the_whole_command_and_hash() -> None:
    data = pdf_render(template="certificates/release_letter.html", context=letter_context())
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    squeezed = "".join(text.split())
    assert "sha256sumsource.archive" in squeezed
    assert SHA in squeezed
    assert "B.V.." not in text


def test_every_line_of_the_deposit_certificate_stays_inside_the_page(
    product, staff, notary, notary_identity, monkeypatch
) -> None:
    from escrow import certificates
    from escrow.services.deposits import deposit_acknowledge
    from tests.deposits import deposit_through_pipeline

    deposit = deposit_through_pipeline(product=product, staff=staff, version="2.4.0")
    deposit = deposit_acknowledge(deposit=deposit, notary=notary)
    rendered: list[tuple[str, dict[str, Any]]] = []

    def capture(*, template: str, context: dict[str, Any]) -> bytes:
        rendered.append((template, context))
        return pdf_render(template=template, context=context)

    monkeypatch.setattr(certificates, "pdf_render", capture)
    data = certificates.certificate_pdf_render(deposit=deposit)
    [(template, context)] = rendered
    assert overflowing_text(template, context) == []
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    assert "Acme Software B.V." in text
    assert "B.V.." not in text
