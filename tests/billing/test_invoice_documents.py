"""Invoice PDFs: they show the invoice's own figures, are stored once, and never change."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing.documents import invoice_document_render, invoice_pdf_render
from billing.invoicing import Line, credit_note_issue, invoice_issue
from billing.models import Invoice
from records.models import StoredFile
from records.services.files import stored_file_open
from vault.site_clients import all_sites


def pdf_text(data: bytes) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


@pytest.fixture
def invoice(organisation_a, vendor) -> Invoice:
    vendor.country = "NL"
    vendor.save()
    return invoice_issue(
        customer=organisation_a,
        vendor=vendor,
        purpose=Invoice.Purpose.SUBSCRIPTION,
        lines=[
            Line("Escrow subscription for Ledger Pro", Decimal("500.00")),
            Line("Set-up of the deposit pipeline", Decimal("120.00")),
        ],
        currency="EUR",
        actor=None,
    )


def test_the_pdf_shows_the_number_parties_lines_and_total(invoice) -> None:
    assert invoice.total == Decimal("750.20")  # 620.00 net + 21% Dutch VAT
    data = invoice_pdf_render(invoice=invoice)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert f"Invoice {invoice.number}" in text
    assert "Northwind Logistics B.V." in text
    assert "Acme Software B.V." in text
    assert "Escrow subscription for Ledger Pro" in text
    assert "Set-up of the deposit pipeline" in text
    assert "EUR 620.00" in text
    assert "EUR 130.20" in text
    assert "EUR 750.20" in text


def test_a_credit_note_pdf_says_it_is_one_and_what_it_corrects(invoice, staff) -> None:
    note = credit_note_issue(invoice=invoice, reason="Wrong product", actor=staff)
    text = pdf_text(invoice_pdf_render(invoice=note))
    assert f"Credit note {note.number}" in text
    assert f"invoice {invoice.number}" in text
    assert "EUR -750.20" in text


def test_the_stored_document_is_the_pdf_of_the_invoice(invoice) -> None:
    stored = invoice_document_render(invoice=invoice)
    assert stored.key == f"invoices/{invoice.year}/{invoice.number}.pdf"
    assert stored.purpose == StoredFile.Purpose.INVOICE
    assert stored.content_type == "application/pdf"
    assert stored.filename == f"invoice-{invoice.number}.pdf"
    with stored_file_open(stored) as stream:
        data = stream.read()
    assert len(data) == stored.size
    assert f"Invoice {invoice.number}" in pdf_text(data)
    assert "EUR 750.20" in pdf_text(data)
    assert all_sites()[0].hash(stored.key) == stored.sha256


def test_rendering_again_returns_the_same_stored_document_unchanged(invoice, monkeypatch) -> None:
    first = invoice_document_render(invoice=invoice)

    def no_second_rendering(**kwargs: object) -> bytes:
        raise AssertionError("an issued invoice's PDF was rendered again")

    monkeypatch.setattr("billing.documents.invoice_pdf_render", no_second_rendering)
    again = invoice_document_render(invoice=invoice)
    assert (again.pk, again.sha256) == (first.pk, first.sha256)
    assert StoredFile.objects.filter(purpose=StoredFile.Purpose.INVOICE).count() == 1


def test_a_credit_note_is_stored_under_its_own_name(invoice, staff) -> None:
    note = credit_note_issue(invoice=invoice, reason="Wrong product", actor=staff)
    stored = invoice_document_render(invoice=note)
    assert stored.filename == f"credit-note-{note.number}.pdf"
    assert stored.key != invoice_document_render(invoice=invoice).key
