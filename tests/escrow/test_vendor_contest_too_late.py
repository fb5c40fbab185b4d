"""A contest on a claim that was withdrawn or decided gets a clear answer, never a 500."""

from __future__ import annotations

from django.test import Client

from escrow.links import vendor_claim_link
from escrow.services.claims import claim_notify_vendor, claim_withdraw
from tests.factories import make_acknowledged_deposit, make_active_subscription, make_claim


def test_a_contest_on_a_withdrawn_claim_is_answered_and_changes_nothing(
    licence, product, subscriber, staff, notary, notary_identity
) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    link = vendor_claim_link(claim=claim)  # the vendor keeps the e-mail's link
    claim_withdraw(claim=claim, actor=subscriber)

    page = Client().post(link, {"statement": "We are solvent."})
    assert page.status_code == 200
    assert "can no longer be contested: it is withdrawn" in page.content.decode()
    claim.refresh_from_db()
    assert (claim.state, claim.vendor_statement) == ("withdrawn", "")
