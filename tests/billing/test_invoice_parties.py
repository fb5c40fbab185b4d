"""Rule 8 of docs/billing.md: invoices carry both parties' postal addresses and the
exact VAT rate; a missing address is printed as missing and warned about in the admin."""

from __future__ import annotations

import io
from decimal import Decimal

from pypdf import PdfReader

from billing.documents import invoice_pdf_render
from billing.invoicing import Line, invoice_issue
from billing.models import Invoice
from tests.conftest import signed_in_client
from tests.factories import OrganisationFactory


def pdf_text(data: bytes) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


def issue(customer, vendor) -> Invoice:
    return invoice_issue(
        customer=customer,
        vendor=vendor,
        purpose=Invoice.Purpose.DATA_EXPORT,
        lines=[Line("Data export", Decimal("100.00"))],
        currency="EUR",
        actor=None,
    )


def test_the_invoice_carries_both_postal_addresses(vendor, organisation_a, subscriber) -> None:
    """Edge 12: invoices carried no postal addresses, which an EU invoice must have."""
    vendor.address = "Keizersgracht 1\n1015 CJ Amsterdam"
    vendor.save()
    organisation_a.address = "Coolsingel 40\n3011 AD Rotterdam"
    organisation_a.save()
    invoice = issue(organisation_a, vendor)
    text = pdf_text(invoice_pdf_render(invoice=invoice))
    assert "Keizersgracht 1 1015 CJ Amsterdam" in text
    assert "Coolsingel 40 3011 AD Rotterdam" in text
    assert "no postal address" not in text
    listing = signed_in_client(subscriber).get("/portal/invoices/").content.decode()
    assert "Keizersgracht 1<br>1015 CJ Amsterdam" in listing
    assert "Coolsingel 40<br>3011 AD Rotterdam" in listing
    assert invoice.missing_addresses == []


def test_a_missing_address_is_printed_as_missing_and_warned_about(
    vendor, organisation_a, staff
) -> None:
    vendor.address = "Keizersgracht 1"
    vendor.save()
    invoice = issue(organisation_a, vendor)  # the customer has no address on file
    assert invoice.missing_addresses == ["customer"]
    assert "(no postal address on file)" in pdf_text(invoice_pdf_render(invoice=invoice))
    page = signed_in_client(staff).get(f"/admin/billing/invoice/{invoice.pk}/change/", follow=True)
    warnings = " ".join(str(message) for message in page.context["messages"])
    assert "carries no postal address for the customer" in warnings


def test_the_vat_rate_is_printed_exactly(vendor, settings) -> None:
    """Edge 12: the VAT label rounded 8.5% to "8%"."""
    settings.ESCROW_DOMESTIC_VAT_RATE = Decimal("0.085")
    customer = OrganisationFactory(country=vendor.country)
    invoice = issue(customer, vendor)
    assert (invoice.vat_amount, invoice.vat_label) == (Decimal("8.50"), "8.5%")
    text = pdf_text(invoice_pdf_render(invoice=invoice))
    assert "VAT 8.5%" in text
    assert "VAT 8%" not in text
    reverse_charged = issue(OrganisationFactory(country="DE", vat_number="DE123456789"), vendor)
    assert "VAT 0% (Intra-EU reverse charge)" in pdf_text(
        invoice_pdf_render(invoice=reverse_charged)
    )
