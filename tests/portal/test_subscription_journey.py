"""The whole subscribe, invoice, pay, activate path through the portal's HTTP views."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from pypdf import PdfReader

from billing.models import Invoice, Subscription
from records.models import Notification
from tests.conftest import signed_in_client


def pdf_text(data: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture(autouse=True)
def _on_the_licence_anniversary() -> Iterator[None]:
    """Subscribed on the licence's anniversary (1 January), the first period is a whole
    year at the whole fee (tests/portal/test_subscribe_page.py has the prorated ones)."""
    with time_machine.travel(datetime(2027, 1, 1, 10, tzinfo=UTC), tick=False):
        yield


def test_subscribe_invoice_pay_activate(
    licence, subscriber, staff, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    customer = signed_in_client(subscriber)
    page = customer.get(f"/portal/licences/{licence.pk}/subscribe/").content.decode()
    assert "EUR 500.00" in page  # 5% of the 10,000.00 licence fee
    assert "own use only" in page

    refused = customer.post(f"/portal/licences/{licence.pk}/subscribe/", {})
    assert "Accept the escrow terms to subscribe." in refused.content.decode()
    assert not Subscription.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = customer.post(
            f"/portal/licences/{licence.pk}/subscribe/", {"accept_terms": "on"}
        )
    assert response["Location"] == "/portal/invoices/"
    invoice = Invoice.objects.get()
    listing = customer.get("/portal/invoices/").content.decode()
    assert invoice.number in listing and "Open" in listing

    link = customer.get(f"/portal/invoices/{invoice.number}/pdf/")
    assert link["Location"].startswith("/files/")
    pdf = customer.get(link["Location"])
    text = pdf_text(b"".join(pdf.streaming_content))
    assert f"Invoice {invoice.number}" in text
    assert "500.00" in text and "105.00" in text and "605.00" in text
    assert "Northwind Logistics B.V." in text

    with django_capture_on_commit_callbacks(execute=True):
        signed_in_client(staff).post(
            "/admin/billing/invoice/",
            {
                "action": "record_payment",
                "_selected_action": [invoice.pk],
                "apply": "Record a payment",
                "amount": "605.00",
                "received_on": "2027-01-01",
            },
        )
    subscription = Subscription.objects.get()
    assert subscription.state == "active"
    dashboard = customer.get("/portal/").content.decode()
    assert "Active" in dashboard and "renews" in dashboard
    assert "Paid" in customer.get("/portal/invoices/").content.decode()

    subjects = [message.subject for message in mailoutbox]
    assert any(f"Invoice {invoice.number}" in subject for subject in subjects)
    assert any("Payment received" in subject for subject in subjects)
    assert any("is active" in subject for subject in subjects)
    assert all(message.to for message in mailoutbox)
    assert Notification.objects.filter(sent_at__isnull=True).count() == 0


def test_another_organisations_invoice_is_not_found(licence, subscriber, other_customer) -> None:
    signed_in_client(subscriber).post(
        f"/portal/licences/{licence.pk}/subscribe/", {"accept_terms": "on"}
    )
    invoice = Invoice.objects.get()
    assert (
        signed_in_client(other_customer).get(f"/portal/invoices/{invoice.number}/pdf/").status_code
        == 404
    )
    assert (
        invoice.number
        not in signed_in_client(other_customer).get("/portal/invoices/").content.decode()
    )


def test_a_licence_of_another_organisation_cannot_be_subscribed(licence, other_customer) -> None:
    response = signed_in_client(other_customer).post(
        f"/portal/licences/{licence.pk}/subscribe/", {"accept_terms": "on"}
    )
    assert response.status_code == 404
    assert not Subscription.objects.exists()


def test_a_customer_cancels_its_subscription(licence, subscriber, other_customer) -> None:
    customer = signed_in_client(subscriber)
    customer.post(f"/portal/licences/{licence.pk}/subscribe/", {"accept_terms": "on"})
    subscription = Subscription.objects.get()
    assert (
        signed_in_client(other_customer)
        .post(f"/portal/subscriptions/{subscription.pk}/cancel/", {"confirm": "on"})
        .status_code
        == 404
    )
    customer.post(f"/portal/subscriptions/{subscription.pk}/cancel/", {"confirm": "on"})
    subscription.refresh_from_db()
    assert subscription.state == "cancelled"
    again = customer.post(
        f"/portal/subscriptions/{subscription.pk}/cancel/", {"confirm": "on"}, follow=True
    )
    assert "it is &#x27;cancelled&#x27;" in again.content.decode()


@pytest.mark.parametrize(
    ("country", "vat_number", "message"),
    [
        ("DE", "NL123456789B01", "starts with DE"),
        ("DE", "DE 1", "two-letter country prefix"),
        ("DE", "DE<script>", "two-letter country prefix"),
        ("Germany", "", "two-letter ISO country code"),
    ],
)
def test_a_bad_vat_number_or_country_is_refused_on_the_field(
    staff, country, vat_number, message
) -> None:
    response = signed_in_client(staff).post(
        "/admin/accounts/organisation/add/",
        {
            "name": "Contoso GmbH",
            "kind": "customer",
            "country": country,
            "vat_number": vat_number,
            "contact_email": "it@contoso.example",
            "address": "",
        },
    )
    assert response.status_code == 200
    assert message in response.content.decode()


def test_a_vat_number_is_normalised(staff) -> None:
    from accounts.models import Organisation

    signed_in_client(staff).post(
        "/admin/accounts/organisation/add/",
        {
            "name": "Contoso GmbH",
            "kind": "customer",
            "country": "DE",
            "vat_number": "de 123.456.789",
            "contact_email": "it@contoso.example",
            "address": "",
        },
    )
    assert Organisation.objects.get(name="Contoso GmbH").vat_number == "DE123456789"
