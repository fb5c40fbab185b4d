"""The notary's lists scale: the dashboard shows the most urgent few of each list
with a link to the whole list; the register and the claims are paginated,
searchable and filterable by product, state, organisation and day, each page in a
constant number of queries whatever the number of rows. A rejected upload never
reached the notary and is in none of them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine

from accounts.models import Organisation, Product
from escrow.models import Deposit, ReleaseClaim
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
from tests.factories import OrganisationFactory, ProductFactory, UserFactory, make_deposit


def replicated(product: Product, version: str) -> Deposit:
    """A deposit waiting for the notary's acknowledgement."""
    deposit = make_deposit(product=product, version=version)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    deposit_store(deposit=deposit)
    return deposit_replicate(deposit=deposit)


def rows(html: str) -> int:
    return len(re.findall(r"<tr>\s*<td data-label=", html))


def claims_by(
    claimant: Organisation, vendor: Organisation, count: int, prefix: str = "Tool"
) -> None:
    """Claims in their first state, one product each (one open claim per product);
    the lists, not the filing, are under test here."""
    user = UserFactory(organisation=claimant)
    for n in range(count):
        claimed = ProductFactory(
            vendor=vendor, name=f"{prefix} {n:02}", slug=f"{prefix}-{n}".lower()
        )
        ReleaseClaim.objects.create(
            claimant=claimant,
            filed_by=user,
            product=claimed,
            condition="insolvency",
            statement="Bankrupt.",
        )


@pytest.fixture
def rejected(product: Product) -> Deposit:
    return deposit_reject(
        deposit=make_deposit(product=product, version="6.6.6"), problem="Not a tar archive."
    )


# --- rejected uploads never reached the notary ---------------------------------------


def test_a_rejected_upload_is_in_no_list_of_the_notary(rejected, product, notary) -> None:
    make_deposit(product=product, version="1.0.0")
    client = signed_in_client(notary)
    dashboard = client.get("/notary/").content.decode()
    assert "1.0.0" in dashboard and "6.6.6" not in dashboard
    register = client.get("/notary/deposits/").content.decode()
    assert "1.0.0" in register and "6.6.6" not in register
    assert rows(client.get("/notary/deposits/", {"q": "6.6.6"}).content.decode()) == 0
    assert client.get(f"/notary/deposits/{rejected.pk}/").status_code == 404


def test_the_state_filter_does_not_offer_rejected(notary) -> None:
    html = signed_in_client(notary).get("/notary/deposits/").content.decode()
    assert 'value="rejected"' not in html
    refused = signed_in_client(notary).get("/notary/deposits/", {"state": "rejected"})
    assert "Select a valid choice." in refused.content.decode()


# --- the dashboard: the most urgent few, and the way to all ----------------------------


def test_the_dashboard_caps_each_list_and_links_to_the_whole_list(
    product, vendor, organisation_a, notary
) -> None:
    for n in range(12):
        replicated(product, f"1.{n}.0")
    claims_by(organisation_a, vendor, 13)
    html = signed_in_client(notary).get("/notary/").content.decode()
    assert '<a href="/notary/claims/?status=open">See all 13 open claims</a>' in html
    assert (
        '<a href="/notary/deposits/?state=replicated">'
        "See all 12 deposits awaiting your acknowledgement</a>"
    ) in html
    assert "Search the whole register (12 deposits)" in html
    awaiting = html.split("<h2>Awaiting your acknowledgement</h2>")[1].split("</section>")[0]
    assert awaiting.count("<li>") == 10
    # The oldest wait longest: they come first.
    assert "Ledger Pro 1.0.0" in awaiting and "Ledger Pro 1.11.0" not in awaiting
    open_claims = html.split("<h2>Open release claims</h2>")[1].split("</section>")[0]
    assert rows(open_claims) == 10


# --- the register ----------------------------------------------------------------------


def test_the_register_is_found_by_vendor_product_state_version_and_day(
    product, vendor, notary
) -> None:
    other_vendor = OrganisationFactory(name="Globex Corp.", kind=Organisation.Kind.VENDOR)
    other = ProductFactory(vendor=other_vendor, name="Widget Works", slug="widget-works")
    with time_machine.travel(datetime(2026, 3, 1, 9, tzinfo=UTC), tick=False):
        replicated(product, "1.0.0")
    with time_machine.travel(datetime(2026, 6, 1, 9, tzinfo=UTC), tick=False):
        make_deposit(product=other, version="7.0.0")
    client = signed_in_client(notary)

    def versions(**query: object) -> set[str]:
        html = client.get("/notary/deposits/", query).content.decode()
        return set(re.findall(r'<td data-label="Version">([^<]+)</td>', html))

    assert versions() == {"1.0.0", "7.0.0"}
    assert versions(vendor=other_vendor.pk) == {"7.0.0"}
    assert versions(product=product.pk) == {"1.0.0"}
    assert versions(state="replicated") == {"1.0.0"}
    assert versions(q="7.0") == {"7.0.0"}
    assert versions(received_from="2026-05-01") == {"7.0.0"}
    assert versions(received_until="2026-03-01") == {"1.0.0"}


def test_the_register_is_25_a_page(product, notary) -> None:
    for n in range(27):
        make_deposit(product=product, version=f"0.{n}.0")
    client = signed_in_client(notary)
    first = client.get("/notary/deposits/").content.decode()
    assert rows(first) == 25 and "Page 1 of 2 (27 in all)" in first
    # The next page keeps the filters of the request.
    filtered = client.get("/notary/deposits/", {"q": "0.", "state": "received"}).content.decode()
    assert 'href="?q=0.&amp;state=received&amp;page=2"' in filtered


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"vendor": "999999"}, "Select a valid choice."),
        ({"vendor": "9" * 30}, "Select a valid choice."),
        ({"product": "1 OR 1=1"}, "Select a valid choice."),
        ({"received_until": "2026-13-01"}, "Enter a valid date."),
        (
            {"received_from": "2026-05-02", "received_until": "2026-05-01"},
            "This day is before the first day: swap the two.",
        ),
    ],
)
def test_a_bad_register_filter_says_what_is_wrong(product, notary, query, message) -> None:
    make_deposit(product=product, version="1.0.0")
    page = signed_in_client(notary).get("/notary/deposits/", query)
    assert page.status_code == 200
    assert message in page.content.decode()
    assert rows(page.content.decode()) == 1


# --- claims ----------------------------------------------------------------------------


def test_the_claims_are_found_by_organisation_number_and_status(
    vendor, organisation_a, organisation_b, notary
) -> None:
    claims_by(organisation_a, vendor, 2, prefix="North")
    claims_by(organisation_b, vendor, 3, prefix="Cont")
    client = signed_in_client(notary)

    def listed(**query: object) -> list[str]:
        html = client.get("/notary/claims/", query).content.decode()
        return re.findall(r'<td data-label="Claimant">([^<]+)</td>', html)

    assert len(listed()) == 5
    assert listed(organisation=organisation_b.pk) == [organisation_b.name] * 3
    assert len(listed(organisation=vendor.pk)) == 5  # the vendor of every product
    first = ReleaseClaim.objects.order_by("pk").first()
    assert first is not None
    assert listed(q=f"#{first.pk}") == [organisation_a.name]
    assert listed(q="#" + "9" * 40) == []  # a number too large for any claim finds none
    assert listed(q="#²") == []  # a digit, but not a number
    assert listed(q="contoso") == [organisation_b.name] * 3
    assert len(listed(status="open")) == 5
    assert listed(status="closed") == []
    html = client.get("/notary/claims/", {"status": "closed"}).content.decode()
    assert "No claim matches these filters." in html


# --- notifications ----------------------------------------------------------------------


def test_the_notary_finds_a_notification_by_word(notary) -> None:
    kind = Notification.Kind
    audience = Notification.Audience.NOTARIES
    notification_queue(
        kind=kind.RELEASE_CLAIM_READY,
        subject="Claim 12 is ready",
        body="Review.",
        audience=audience,
    )
    notification_queue(
        kind=kind.SEAL_RECIPIENTS_CHANGED,
        subject="Keys rotated tonight",
        body="Keys.",
        audience=audience,
    )
    html = signed_in_client(notary).get("/notary/notifications/", {"q": "ready"}).content.decode()
    assert "Claim 12 is ready" in html and "Keys rotated tonight" not in html


# --- a constant number of queries, whatever the number of rows ----------------------------


@pytest.fixture
def scaled(request: pytest.FixtureRequest, product, vendor, organisation_a, notary) -> int:
    size: int = request.param
    for n in range(size):
        replicated(product, f"1.{n}.0")
        make_deposit(product=product, version=f"2.{n}.0")
    claims_by(organisation_a, vendor, size)
    for n in range(size):
        notification_queue(
            kind=Notification.Kind.RELEASE_CLAIM_READY,
            subject=f"Notice {n}",
            body="Body.",
            audience=Notification.Audience.NOTARIES,
        )
    return size


# The bound of each page, the same for 3 rows and for 40 (more than a page of 25). The
# deposit lists read their rows' build verifications in one more query each.
PAGES = {
    "/notary/": 14,
    "/notary/deposits/": 8,
    "/notary/deposits/?state=replicated&q=1.&received_from=2020-01-01&page=2": 8,
    "/notary/claims/": 7,
    "/notary/claims/?status=open&q=Tool&filed_from=2020-01-01": 7,
    "/notary/notifications/": 6,
    "/notary/notifications/?q=Notice&kind=release_claim_ready": 6,
}


@pytest.mark.parametrize("scaled", [3, 40], indirect=True)
@pytest.mark.parametrize(("url", "bound"), list(PAGES.items()))
def test_each_list_page_costs_the_same_queries_at_any_size(
    scaled, notary, url, bound, django_assert_max_num_queries
) -> None:
    client = signed_in_client(notary)
    assert client.get(url).status_code == 200
    with django_assert_max_num_queries(bound):
        response = client.get(url)
    assert response.status_code == 200
