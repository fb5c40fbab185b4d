"""The notary's claim list and claim page say where each claim stands: the contest
deadline on the vendor's clock, and why there is no decision form yet."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from escrow.services.claims import claim_notify_vendor
from tests.conftest import signed_in_client
from tests.factories import make_acknowledged_deposit, make_active_subscription, make_claim

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def notified_claim(vendor, licence, product, subscriber, staff, notary, notary_identity):
    # A vendor in New York, filed on Wednesday 25 November 2026 at 09:00 there: ten US
    # business days, Thanksgiving (Thursday 26) skipped, end on Thursday 10 December
    # 2026 at 09:00 EST (see tests/escrow/test_business_days.py).
    vendor.country, vendor.time_zone = "US", "America/New_York"
    vendor.save(update_fields=["country", "time_zone"])
    with time_machine.travel(datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK), tick=False):
        make_active_subscription(licence=licence, actor=subscriber, staff=staff)
        make_acknowledged_deposit(product=product, notary=notary)
        claim = make_claim(product=product, filed_by=subscriber)
        claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    return claim


def test_the_claim_list_gives_the_deadline_on_the_vendor_s_clock(notified_claim, notary) -> None:
    page = signed_in_client(notary).get("/notary/").content.decode()
    assert "Contest deadline (vendor's time)" in page
    assert "10 Dec 2026 at 09:00 EST (contest period)" in page


def test_the_claim_page_says_what_it_waits_for_instead_of_a_decision_form(
    notified_claim, notary
) -> None:
    with time_machine.travel(datetime(2026, 12, 9, 9, 0, tzinfo=NEW_YORK), tick=False):
        page = signed_in_client(notary).get(f"/notary/claims/{notified_claim.pk}/").content
    body = page.decode()
    assert "Record the decision" not in body
    assert (
        "The vendor&#x27;s contest period, until Thursday 10 December 2026, 09:00 EST "
        "(America/New_York): Acme Software B.V. may contest the claim or release "
        "voluntarily. Then the notary reviews it."
    ) in body
    assert "(1 business day left)" in body
