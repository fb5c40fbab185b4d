"""Invoice PDFs: rendered once, stored in the storage sites, never changed."""

from __future__ import annotations

from django.template.loader import render_to_string

from billing.models import Invoice
from escrow.models import StoredFile
from escrow.services.files import stored_file_put


def invoice_document_key(invoice: Invoice) -> str:
    return f"invoices/{invoice.year}/{invoice.number}.pdf"


def render_invoice_pdf(*, invoice: Invoice) -> bytes:
    """The invoice as a PDF (WeasyPrint), from the invoice's own stored figures."""
    from weasyprint import HTML  # loading Pango is slow; only pay for it when rendering

    html = render_to_string(
        "billing/invoice.html", {"invoice": invoice, "lines": invoice.lines.order_by("position")}
    )
    return bytes(HTML(string=html).write_pdf())


def invoice_document(*, invoice: Invoice) -> StoredFile:
    """The stored PDF of an invoice, rendering and storing it the first time."""
    existing = StoredFile.objects.filter(key=invoice_document_key(invoice)).first()
    if existing is not None:
        return existing
    return stored_file_put(
        key=invoice_document_key(invoice),
        source=render_invoice_pdf(invoice=invoice),
        purpose=StoredFile.Purpose.INVOICE,
        content_type="application/pdf",
        filename=f"{invoice.get_kind_display().lower().replace(' ', '-')}-{invoice.number}.pdf",
    )
