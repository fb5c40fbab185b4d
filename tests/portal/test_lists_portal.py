"""The customer portal's lists scale: the dashboard shows the latest few deposits of
each product, and the product page, invoices, claims and notifications are paginated,
searchable and filterable, each in a constant number of queries whatever the number
of rows. The claim form offers only the products the organisation may claim."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from accounts.models import Organisation, Product, User
from billing.invoicing import Line, credit_note_issue, invoice_issue
from billing.models import Invoice, LicenceAgreement, Payment, Refund
from billing.selectors import amounts_due
from escrow.models import Deposit, DepositCopy, ReleaseClaim
from escrow.services.deposits import (
    deposit_reject,
    deposit_replicate,
    deposit_seal,
    deposit_store,
    deposit_verify,
)
from records.models import Notification
from records.services.notifications import notification_queue
from tests.conftest import signed_in_client
from tests.factories import (
    LicenceFactory,
    ProductFactory,
    make_acknowledged_deposit,
    make_active_subscription,
    make_deposit,
)

WARNINGS = [
    "No README found: the deposit carries no instructions for building or running it.",
    "No licence file (LICENSE, LICENCE or COPYING) found.",
]


def stored(product: Product, version: str, *, warnings: list[str] | None = None) -> Deposit:
    """A deposit walked to ``replicated``, with a completeness report and two copies."""
    deposit = make_deposit(product=product, version=version)
    completeness = {"files": 12, "warnings": warnings or []}
    deposit_verify(
        deposit=deposit,
        manifest={"completeness": completeness},
        manifest_sha256="a" * 64,
        signature="s",
    )
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    deposit_store(deposit=deposit)
    for site in ("primary", "secondary"):
        DepositCopy.objects.create(
            deposit=deposit, site=site, kind="sealed", key=f"k/{site}", sha256="c" * 64, size=1
        )
    return deposit_replicate(deposit=deposit)


@pytest.fixture
def covered(licence: LicenceAgreement, subscriber: User, staff: User) -> LicenceAgreement:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    return licence


def deposits_of(product: Product, count: int) -> list[Deposit]:
    return [make_deposit(product=product, version=f"2.{n}.0") for n in range(count)]


def rows(html: str) -> int:
    return len(re.findall(r"<tr>\s*<td data-label=", html))


# --- the dashboard -------------------------------------------------------------------


def test_the_dashboard_shows_the_latest_five_deposits_and_links_to_all(
    covered, product, subscriber
) -> None:
    for n in range(8):
        stored(product, f"1.{n}.0")
    html = signed_in_client(subscriber).get("/portal/").content.decode()
    for n in range(3, 8):
        assert f">1.{n}.0<" in html
    for n in range(3):
        assert f">1.{n}.0<" not in html
    assert f'<a href="/portal/products/{product.slug}/">See all 8 deposits of Ledger Pro</a>' in (
        html
    )
    assert "primary, secondary" in html  # the sites holding copies


def test_the_dashboard_explains_completeness_warnings_inline(covered, product, subscriber) -> None:
    stored(product, "1.0.0", warnings=WARNINGS)
    html = signed_in_client(subscriber).get("/portal/").content.decode()
    assert '<details class="warnings"><summary>2 warnings</summary>' in html
    for warning in WARNINGS:
        assert f"<li>{warning}</li>" in html
    assert "title=" not in html


def test_the_dashboard_leaves_out_rejected_uploads_and_counts_only_deposits(
    covered, product, subscriber
) -> None:
    stored(product, "1.0.0")
    deposit_reject(deposit=make_deposit(product=product, version="9.9.9"), problem="Not a tar.")
    html = signed_in_client(subscriber).get("/portal/").content.decode()
    assert "9.9.9" not in html
    assert "Search the deposits of Ledger Pro" in html  # one deposit: nothing more to see


def test_what_is_due_is_summed_by_currency_in_one_query(
    organisation_a, vendor, django_assert_num_queries
) -> None:
    def issue(amount: str, currency: str = "EUR") -> Invoice:
        return invoice_issue(
            customer=organisation_a,
            vendor=vendor,
            currency=currency,
            lines=[Line("Export", Decimal(amount))],
            purpose=Invoice.Purpose.DATA_EXPORT,
            actor=None,
        )

    open_eur = issue("100.00")
    half_paid = issue("50.00")
    Payment.objects.create(invoice=half_paid, amount=Decimal("20.00"), received_on=date(2026, 1, 2))
    paid = issue("70.00")
    Payment.objects.create(invoice=paid, amount=paid.total, received_on=date(2026, 1, 2))
    usd = issue("10.00", "USD")
    credited = issue("30.00")
    credit_note_issue(invoice=credited, reason="Cancelled", actor=None)
    expected_eur = open_eur.amount_due() + half_paid.amount_due()
    with django_assert_num_queries(1):
        due = amounts_due(organisation_a)
    assert due == {"EUR": expected_eur, "USD": usd.total}


# --- the product page ------------------------------------------------------------------


def test_the_product_page_lists_25_deposits_a_page(covered, product, subscriber) -> None:
    deposits_of(product, 30)
    client = signed_in_client(subscriber)
    first = client.get(f"/portal/products/{product.slug}/").content.decode()
    assert rows(first) == 25
    assert "Page 1 of 2 (30 in all)" in first
    second = client.get(f"/portal/products/{product.slug}/?page=2").content.decode()
    assert rows(second) == 5


def test_the_product_page_finds_a_version_or_a_commit(covered, product, subscriber) -> None:
    from escrow.services.deposits import deposit_register

    deposits_of(product, 3)
    deposit_register(
        product=product,
        version="3.0.0",
        archive_sha256="d" * 64,
        pipeline={"commit": "f00dfeed42"},
    )
    client = signed_in_client(subscriber)
    url = f"/portal/products/{product.slug}/"
    by_version = client.get(url, {"q": "2.1"}).content.decode()
    assert rows(by_version) == 1 and ">2.1.0<" in by_version
    by_commit = client.get(url, {"q": "F00DFEED"}).content.decode()
    assert rows(by_commit) == 1 and ">3.0.0<" in by_commit
    nothing = client.get(url, {"q": "no-such-thing"}).content.decode()
    assert "No deposit matches these filters." in nothing


def test_the_product_page_filters_by_state_and_day(covered, product, subscriber) -> None:
    with time_machine.travel(datetime(2026, 3, 1, 9, tzinfo=UTC), tick=False):
        stored(product, "1.0.0")
    with time_machine.travel(datetime(2026, 5, 1, 9, tzinfo=UTC), tick=False):
        make_deposit(product=product, version="1.1.0")
    client = signed_in_client(subscriber)
    url = f"/portal/products/{product.slug}/"
    replicated = client.get(url, {"state": "replicated"}).content.decode()
    assert ">1.0.0<" in replicated and ">1.1.0<" not in replicated
    spring = client.get(url, {"received_from": "2026-04-01", "received_until": "2026-05-01"})
    assert ">1.1.0<" in spring.content.decode() and ">1.0.0<" not in spring.content.decode()
    assert "1 Mar 2026 at 09:00 UTC" in client.get(url).content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"received_from": "yesterday"}, "Enter a valid date."),
        ({"state": "rejected"}, "Select a valid choice."),
        (
            {"received_from": "2026-05-02", "received_until": "2026-05-01"},
            "This day is before the first day: swap the two.",
        ),
        ({"q": "x" * 101}, "Ensure this value has at most 100 characters"),
        ({"q": "a\x00b"}, "Null characters are not allowed."),
    ],
)
def test_a_bad_filter_says_what_is_wrong(covered, product, subscriber, query, message) -> None:
    deposits_of(product, 2)
    page = signed_in_client(subscriber).get(f"/portal/products/{product.slug}/", query)
    assert page.status_code == 200
    html = page.content.decode()
    assert message in html
    assert rows(html) == 2  # the bad filter is left out, the list still shows


def test_the_product_page_leaves_out_rejected_uploads(covered, product, subscriber) -> None:
    deposit_reject(deposit=make_deposit(product=product, version="9.9.9"), problem="Not a tar.")
    html = signed_in_client(subscriber).get(f"/portal/products/{product.slug}/").content.decode()
    assert "9.9.9" not in html and "No deposits yet." in html


# --- invoices -----------------------------------------------------------------------


def issue_invoices(organisation: Organisation, vendor: Organisation, count: int) -> list[Invoice]:
    invoices = []
    for n in range(count):
        invoice = invoice_issue(
            customer=organisation,
            vendor=vendor,
            currency="EUR",
            lines=[Line(f"Export {n}", Decimal("100.00"))],
            purpose=Invoice.Purpose.DATA_EXPORT,
            actor=None,
        )
        if n % 2:
            Payment.objects.create(
                invoice=invoice, amount=invoice.total, received_on=date(2026, 1, 2)
            )
        invoices.append(invoice)
    return invoices


def test_the_invoices_page_shows_25_a_page_with_money_in_its_currency(
    organisation_a, vendor, subscriber
) -> None:
    issue_invoices(organisation_a, vendor, 27)
    client = signed_in_client(subscriber)
    first = client.get("/portal/invoices/").content.decode()
    assert rows(first) == 25
    assert "Page 1 of 2 (27 in all)" in first
    assert "EUR 121.00" in first  # 21% Dutch VAT on EUR 100.00
    assert "Open: EUR 121.00 to pay" in first
    assert rows(client.get("/portal/invoices/?page=2").content.decode()) == 2


def test_invoices_are_found_by_status_number_year_and_product(
    organisation_a, vendor, subscriber, staff, licence, product
) -> None:
    unpaid, paid, credited, refund_due = issue_invoices(organisation_a, vendor, 4)
    Payment.objects.create(invoice=refund_due, amount=refund_due.total, received_on=date.today())
    credit_note_issue(invoice=credited, reason="Cancelled", actor=None)
    credit_note_issue(invoice=refund_due, reason="Cancelled after payment", actor=None)
    Refund.objects.create(
        invoice=refund_due,
        amount=Decimal("21.00"),
        paid_on=date.today(),
        reason="Part",
        recorded_by=staff,
    )
    subscription = make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    ledger = invoice_issue(
        customer=organisation_a,
        vendor=vendor,
        currency="EUR",
        lines=[Line("Escrow of Ledger Pro", Decimal("500.00"))],
        purpose=Invoice.Purpose.SUBSCRIPTION,
        subscription=subscription,
        actor=None,
    )
    Payment.objects.create(invoice=ledger, amount=ledger.total, received_on=date.today())
    client = signed_in_client(subscriber)

    def numbers(**query: Any) -> set[str]:
        html = client.get("/portal/invoices/", query).content.decode()
        listed = set(re.findall(r"(?:Invoice|Credit note) (\d{4}-\d{5})</td>", html))
        return listed

    assert numbers(status="open") == {unpaid.number}
    assert numbers(status="paid") == {paid.number, ledger.number}
    assert numbers(status="credited") == {credited.number}
    assert numbers(status="refund_owed") == {refund_due.number}
    assert len(numbers(status="credit_note")) == 2
    assert numbers(q=unpaid.number[-3:]) == {unpaid.number}
    assert numbers(product=product.pk) == {ledger.number}
    assert len(numbers(year=unpaid.year)) == 7
    refund_row = client.get("/portal/invoices/", {"status": "refund_owed"}).content.decode()
    expected = refund_due.refund_owed()
    assert f"Refund owed: EUR {expected:,.2f}" in refund_row


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "lost"}, "Select a valid choice."),
        ({"year": "1999"}, "Select a valid choice."),
        ({"year": "2026'; DROP TABLE billing_invoice;--"}, "Select a valid choice."),
        ({"product": "abc"}, "Select a valid choice."),
    ],
)
def test_a_bad_invoice_filter_says_what_is_wrong(
    organisation_a, vendor, subscriber, query, message
) -> None:
    issue_invoices(organisation_a, vendor, 2)
    page = signed_in_client(subscriber).get("/portal/invoices/", query)
    assert page.status_code == 200
    assert message in page.content.decode()
    assert rows(page.content.decode()) == 2


def test_another_organisations_invoices_are_never_listed(
    organisation_a, organisation_b, vendor, other_customer
) -> None:
    (invoice,) = issue_invoices(organisation_a, vendor, 1)
    client = signed_in_client(other_customer)
    for query in ({}, {"q": invoice.number}, {"year": invoice.year}):
        html = client.get("/portal/invoices/", query).content.decode()
        assert f"Invoice {invoice.number}" not in html and rows(html) == 0


# --- claims ---------------------------------------------------------------------------


def product_choices(html: str) -> set[str]:
    select = re.search(
        r'<select name="product"[^>]*id="id_product"[^>]*>(.*?)</select>', html, re.S
    )
    assert select is not None
    return set(re.findall(r">([^<]+)</option>", select.group(1))) - {"---------"}


def test_the_claim_form_offers_only_products_the_organisation_may_claim(
    covered, product, subscriber, staff, notary, organisation_a, vendor
) -> None:
    make_acknowledged_deposit(product=product, notary=notary)
    # Licensed and subscribed, but nothing acknowledged yet: nothing to release.
    waiting = ProductFactory(vendor=vendor, name="Fleet Planner", slug="fleet-planner")
    waiting_licence = LicenceFactory(customer=organisation_a, product=waiting)
    make_active_subscription(licence=waiting_licence, actor=subscriber, staff=staff)
    make_deposit(product=waiting, version="1.0.0")
    # Licensed with an acknowledged deposit, but no escrow subscription.
    unsubscribed = ProductFactory(vendor=vendor, name="Payroll Classic", slug="payroll-classic")
    LicenceFactory(customer=organisation_a, product=unsubscribed)
    make_acknowledged_deposit(product=unsubscribed, notary=notary)

    html = signed_in_client(subscriber).get("/portal/claims/").content.decode()
    assert product_choices(html) == {"Ledger Pro"}
    # The page still says why the others cannot be claimed.
    assert "No deposit of Fleet Planner has been acknowledged by the notary yet" in html
    assert "has no active escrow subscription for Payroll Classic" in html


def test_without_a_claimable_product_there_is_no_claim_form(licence, subscriber) -> None:
    html = signed_in_client(subscriber).get("/portal/claims/").content.decode()
    assert 'name="statement"' not in html
    assert "None of your organisation's products can be claimed now" in html


def test_a_product_of_another_customer_posted_to_the_claim_form_is_refused(
    covered, product, subscriber, notary, vendor
) -> None:
    make_acknowledged_deposit(product=product, notary=notary)
    stranger = ProductFactory(vendor=vendor, name="Secret Tool", slug="secret-tool")
    page = signed_in_client(subscriber).post(
        "/portal/claims/",
        {"product": stranger.pk, "condition": "insolvency", "statement": "Bankrupt."},
    )
    assert page.status_code == 200
    assert "Select a valid choice." in page.content.decode()
    assert not ReleaseClaim.objects.exists()


def file_claims(organisation: Organisation, user: User, vendor: Organisation, count: int) -> None:
    """Claims in their first state, one product each (the rules allow one open claim
    per product); the list's query count, not the filing, is under test here."""
    for n in range(count):
        claimed = ProductFactory(vendor=vendor, name=f"Tool {n:02}", slug=f"tool-{n}")
        ReleaseClaim.objects.create(
            claimant=organisation,
            filed_by=user,
            product=claimed,
            condition="insolvency",
            statement="Bankrupt.",
        )


def test_the_claim_list_is_paginated_and_filtered(organisation_a, subscriber, vendor) -> None:
    file_claims(organisation_a, subscriber, vendor, 27)
    client = signed_in_client(subscriber)
    first = client.get("/portal/claims/").content.decode()
    assert rows(first) == 25 and "Page 1 of 2 (27 in all)" in first
    found = client.get("/portal/claims/", {"q": "Tool 07"}).content.decode()
    assert rows(found) == 1 and "Tool 07" in found
    assert rows(client.get("/portal/claims/", {"status": "closed"}).content.decode()) == 0


# --- notifications ----------------------------------------------------------------------


def test_notifications_are_found_by_word_and_kind(organisation_a, subscriber) -> None:
    kind = Notification.Kind
    notification_queue(
        kind=kind.INVOICE_ISSUED,
        subject="Invoice 2026-00001",
        body="Pay.",
        organisation=organisation_a,
    )
    notification_queue(
        kind=kind.EXPORT_READY,
        subject="Your export",
        body="Download it.",
        organisation=organisation_a,
    )
    client = signed_in_client(subscriber)
    by_word = client.get("/portal/notifications/", {"q": "download"}).content.decode()
    assert "Your export" in by_word and "Invoice 2026-00001" not in by_word
    by_kind = client.get("/portal/notifications/", {"kind": kind.INVOICE_ISSUED}).content.decode()
    assert "Invoice 2026-00001" in by_kind and "Your export" not in by_kind
    # Only the kinds the organisation received are offered.
    assert "Release claim contested" not in by_kind


# --- a constant number of queries, whatever the number of rows ------------------------------


@pytest.fixture
def scaled(
    request: pytest.FixtureRequest, covered, product, subscriber, organisation_a, vendor, staff
) -> int:
    """``request.param`` deposits, invoices, claims and notifications for the customer."""
    size: int = request.param
    deposits_of(product, size)
    second = ProductFactory(vendor=vendor, name="Fleet Planner", slug="fleet-planner")
    second_licence = LicenceFactory(customer=organisation_a, product=second)
    make_active_subscription(licence=second_licence, actor=subscriber, staff=staff)
    for n in range(size):
        stored(second, f"5.{n}.0", warnings=WARNINGS[:1])
    issue_invoices(organisation_a, vendor, size)
    file_claims(organisation_a, subscriber, vendor, size)
    for n in range(size):
        notification_queue(
            kind=Notification.Kind.INVOICE_ISSUED,
            subject=f"Notice {n}",
            body="Body.",
            organisation=organisation_a,
        )
    return size


# The bound of each page, the same for 3 rows and for 40 (more than a page of 25). The
# deposit lists read their rows' build verifications in one more query.
PAGES = {
    "/portal/": 13,
    "/portal/products/ledger-pro/": 8,
    "/portal/products/ledger-pro/?q=2.&state=received&received_from=2020-01-01&page=2": 8,
    "/portal/invoices/": 7,
    "/portal/invoices/?status=open&year=2026&q=2026": 7,
    "/portal/claims/": 12,
    "/portal/claims/?status=open&q=Tool&filed_from=2020-01-01": 12,
    "/portal/notifications/": 6,
    "/portal/notifications/?q=Notice&kind=invoice_issued": 6,
}


@pytest.mark.parametrize("scaled", [3, 40], indirect=True)
@pytest.mark.parametrize(("url", "bound"), list(PAGES.items()))
def test_each_list_page_costs_the_same_queries_at_any_size(
    scaled, subscriber, url, bound, django_assert_max_num_queries
) -> None:
    client = signed_in_client(subscriber)
    assert client.get(url).status_code == 200  # the session is read once, as in real use
    with django_assert_max_num_queries(bound):
        response = client.get(url)
    assert response.status_code == 200


def test_every_field_description_the_filters_point_to_is_on_the_page(
    covered, product, subscriber, notary
) -> None:
    make_acknowledged_deposit(product=product, notary=notary)
    client = signed_in_client(subscriber)
    for url, query in [
        (f"/portal/products/{product.slug}/", {"received_from": "x"}),
        ("/portal/invoices/", {"year": "x"}),
        ("/portal/claims/", {"filed_until": "x"}),
        ("/portal/notifications/", {"sent_from": "x"}),
    ]:
        html = client.get(url, query).content.decode()
        described = re.findall(r'aria-describedby="([^"]+)"', html)
        assert described, url
        for ids in described:
            for name in ids.split():
                assert f'id="{name}"' in html, (url, name)
