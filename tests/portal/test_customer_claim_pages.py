"""The customer's claim pages: what filing needs, and where a claim stands."""

from __future__ import annotations

import pytest

from escrow.services.claims import claim_notify_vendor
from tests.conftest import signed_in_client
from tests.factories import make_acknowledged_deposit, make_active_subscription, make_claim


@pytest.fixture
def eligible(licence, subscriber, staff, product, notary, notary_identity) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)


def test_the_claims_page_says_what_filing_needs(eligible, subscriber, settings) -> None:
    settings.ESCROW_CONTEST_BUSINESS_DAYS = 7
    page = signed_in_client(subscriber).get("/portal/claims/").content.decode()
    assert "Add at least one document as evidence." in page
    assert "may contest within 7 business days" in page
    assert "You can have one open claim per product." in page


def test_the_claim_page_says_what_the_claim_waits_for(eligible, product, subscriber) -> None:
    claim = make_claim(product=product, filed_by=subscriber)
    client = signed_in_client(subscriber)
    filed = client.get(f"/portal/claims/{claim.pk}/").content.decode()
    assert "The notice to the vendor, which goes out moments after filing" in filed
    assert "Contest deadline" not in filed
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    notified = client.get(f"/portal/claims/{claim.pk}/").content.decode()
    assert "Contest deadline" in notified
    assert "(Europe/Amsterdam)" in notified
    assert "business days" in notified and "left)" in notified
