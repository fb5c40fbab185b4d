"""Invoice PDFs: rendered once, stored in the storage sites, never changed."""

from __future__ import annotations

from billing.models import Invoice
from records.models import StoredFile
from records.pdf import pdf_render
from records.services.files import stored_file_put


def _invoice_document_key(invoice: Invoice) -> str:
    return f"invoices/{invoice.year}/{invoice.number}.pdf"


def invoice_pdf_render(*, invoice: Invoice) -> bytes:
    """The invoice as a PDF, from the invoice's own stored figures."""
    return pdf_render(
        template="billing/invoice.html",
        context={"invoice": invoice, "lines": invoice.lines.order_by("position")},
    )


def invoice_document_render(*, invoice: Invoice) -> StoredFile:
    """The stored PDF of an invoice, rendering and storing it the first time."""
    existing = StoredFile.objects.filter(key=_invoice_document_key(invoice)).first()
    if existing is not None:
        return existing
    return stored_file_put(
        key=_invoice_document_key(invoice),
        source=invoice_pdf_render(invoice=invoice),
        purpose=StoredFile.Purpose.INVOICE,
        content_type="application/pdf",
        filename=f"{invoice.get_kind_display().lower().replace(' ', '-')}-{invoice.number}.pdf",
    )
