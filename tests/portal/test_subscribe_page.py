"""The subscribe page shows the first period and its price (net, VAT, total, currency)
before the customer confirms, and the invoice then says exactly that
(docs/billing.md, rule 1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import time_machine

from billing.models import Invoice, Subscription
from tests.conftest import signed_in_client


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> time_machine.travel:
    return time_machine.travel(datetime(year, month, day, hour, minute, tzinfo=UTC), tick=False)


def test_the_page_shows_the_period_and_the_amount_that_is_then_invoiced(
    licence, subscriber, settings
) -> None:
    """Edge 4: the subscribe page showed neither the period nor the amount."""
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    url = f"/portal/licences/{licence.pk}/subscribe/"
    with at(2026, 12, 2):
        customer = signed_in_client(subscriber)
        page = customer.get(url).content.decode()
        assert "from 2 December 2026 until 31 December 2027" in page
        assert "30 of 365 days" in page
        assert "41.10" in page and "500.00" in page
        assert "EUR 541.10" in page  # net
        assert "VAT 21%" in page and "EUR 113.63" in page
        assert "EUR 654.73" in page  # total
        quoted = re.search(r'name="quoted" value="([^"]+)"', page).group(1)
        customer.post(url, {"accept_terms": "on", "quoted": quoted})
    invoice = Invoice.objects.get()
    assert (invoice.period_start.isoformat(), invoice.period_end.isoformat()) == (
        "2026-12-02",
        "2028-01-01",
    )
    assert (invoice.net_amount, invoice.vat_amount, invoice.total) == (
        Decimal("541.10"),
        Decimal("113.63"),
        Decimal("654.73"),
    )
    assert list(invoice.lines.values_list("amount", flat=True)) == [
        Decimal("41.10"),
        Decimal("500.00"),
    ]


def test_a_price_that_changed_before_the_confirmation_is_shown_again_not_invoiced(
    licence, subscriber
) -> None:
    url = f"/portal/licences/{licence.pk}/subscribe/"
    with at(2027, 3, 14, 23, 58):
        customer = signed_in_client(subscriber)
        page = customer.get(url).content.decode()
        quoted = re.search(r'name="quoted" value="([^"]+)"', page).group(1)
    with at(2027, 3, 15, 0, 1):  # past midnight: one day less to pay for
        response = customer.post(url, {"accept_terms": "on", "quoted": quoted}, follow=True)
    assert "changed since the page was shown" in response.content.decode()
    assert "EUR 484.00" in response.content.decode()  # 400.00 + 21%, the new price
    assert not Subscription.objects.exists()
    assert not Invoice.objects.exists()


def test_a_zero_fee_licence_says_so_and_activates_without_an_invoice(licence, subscriber) -> None:
    licence.annual_fee = Decimal("0.00")
    licence.save()
    url = f"/portal/licences/{licence.pk}/subscribe/"
    with at(2027, 3, 15):
        customer = signed_in_client(subscriber)
        page = customer.get(url).content.decode()
        assert "No fee is due for this period" in page
        assert "EUR 0.00" in page
        response = customer.post(url, {"accept_terms": "on"}, follow=True)
    assert "covered until 31 December 2027" in response.content.decode()
    assert Subscription.objects.get().state == "active"
    assert not Invoice.objects.exists()
