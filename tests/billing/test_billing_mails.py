"""Billing's e-mails link to the portal at ESCROW_PUBLIC_URL, or, when that is not set,
at the host the customer's own request came to (never a fixed port)."""

from __future__ import annotations

from datetime import date

from billing.services import subscriptions_lapse_overdue
from records.models import Notification
from tests.billing.lifecycle import at, pay, subscribe
from tests.conftest import signed_in_client


def test_an_invoice_mail_links_to_the_configured_public_url(licence, subscriber, settings) -> None:
    settings.ESCROW_PUBLIC_URL = "https://escrow.example"
    with at(2027, 1, 1):
        subscribe(licence, subscriber)
    body = Notification.objects.get(kind="invoice_issued").body
    assert "https://escrow.example/portal/invoices/" in body


def test_without_one_the_links_use_the_host_of_the_request(licence, subscriber, settings) -> None:
    settings.ESCROW_PUBLIC_URL = ""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    with at(2027, 1, 1):
        customer = signed_in_client(subscriber)
        customer.post(
            f"/portal/licences/{licence.pk}/subscribe/",
            {"accept_terms": "on"},
            HTTP_HOST="127.0.0.1:8123",
        )
    body = Notification.objects.get(kind="invoice_issued").body
    assert "http://127.0.0.1:8123/portal/invoices/" in body


def test_a_reactivation_and_a_lapse_say_what_to_do_next(licence, subscriber, settings) -> None:
    settings.ESCROW_PUBLIC_URL = "https://escrow.example"
    settings.ESCROW_PAYMENT_TERMS_DAYS = 30
    settings.ESCROW_PAYMENT_GRACE_DAYS = 30
    with at(2027, 1, 1):
        _, invoice = subscribe(licence, subscriber)
    with at(2027, 3, 3):
        subscriptions_lapse_overdue(today=date(2027, 3, 3))
        pay(invoice, on=date(2027, 3, 3))
    lapsed = Notification.objects.get(kind="subscription_lapsed").body
    assert "Paying the unpaid invoice reactivates it" in lapsed
    assert "https://escrow.example/portal/invoices/" in lapsed
    reactivated = Notification.objects.get(kind="subscription_reactivated")
    assert reactivated.subject == "Escrow for Ledger Pro is active again"
    assert "covered from 01 January 2027 until 31 December 2027" in reactivated.body
