"""Eligibility is checked again when the notary decides: a subscription that lapsed, or
was cancelled and has ended, while the claim waited blocks the approval, with a message
to the notary, and nothing is released; rejecting stays possible. A subscription
cancelled at the end of its paid period still covers the claimant until then."""

from __future__ import annotations

import pytest

from billing.services import (
    subscription_cancel,
    subscription_cancel_at_period_end,
    subscription_lapse,
)
from escrow.models import ClaimRelease, ReleaseClaim
from escrow.services.claims import (
    claim_approval_problem,
    claim_notify_vendor,
    claim_reject,
    claim_release_voluntarily_by_vendor,
)
from escrow.services.deposits import deposit_acknowledge
from escrow.services.release_keys import release_key_set
from escrow.services.releases import ApprovalRefused, release_approve
from records.models import AuditEntry, StoredFile
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import make_active_subscription, make_claim
from tests.state_machines import snapshot
from vault import age

REASONS = "The court ruling of 3 November proves the insolvency."
LAPSED = (
    "Approval is not possible now: Northwind Logistics B.V. has no active escrow "
    "subscription for Ledger Pro: only subscribers with a paid, active subscription may "
    "claim a release. Nothing can be released while this is so; you may still reject the "
    "claim or ask for more evidence."
)


@pytest.fixture
def subscription(licence, subscriber, staff):
    return make_active_subscription(licence=licence, actor=subscriber, staff=staff)


@pytest.fixture
def claim(subscription, product, subscriber, staff, notary, notary_identity) -> ReleaseClaim:
    """A claim under review of a really sealed deposit; the claimant has a release key."""
    deposit = deposit_through_pipeline(product=product, staff=staff)
    deposit_acknowledge(deposit=deposit, notary=notary)
    release_key_set(
        actor=subscriber,
        method="recipient",
        recipient=age.X25519Identity.generate().recipient().to_string(),
    )
    filed = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=filed)
    filed.refresh_from_db()
    claim_release_voluntarily_by_vendor(claim=filed, statement="We agree to release.")
    filed.refresh_from_db()
    assert filed.state == "under_review"
    return filed


def footprint() -> dict[str, int]:
    return {
        "releases": ClaimRelease.objects.count(),
        "stored releases": StoredFile.objects.filter(purpose="release").count(),
        "audit": AuditEntry.objects.count(),
    }


@pytest.mark.parametrize("ending", ["lapsed", "cancelled"])
def test_a_subscription_that_ended_after_filing_blocks_the_approval(
    ending, claim, subscription, subscriber, staff, notary, notary_identity
) -> None:
    if ending == "lapsed":
        subscription_lapse(subscription=subscription, reason="renewal unpaid past grace")
    else:
        subscription_cancel(subscription=subscription, actor=staff, reason="contract ended")
    assert claim_approval_problem(claim=claim) == LAPSED
    before = snapshot(claim), footprint()
    with pytest.raises(ApprovalRefused) as refused:
        release_approve(claim=claim, notary=notary, reasons=REASONS, identities=[notary_identity])
    assert str(refused.value) == LAPSED
    assert (snapshot(claim), footprint()) == before
    claim.refresh_from_db()
    assert claim.state == "under_review"
    # Rejection stays possible.
    claim_reject(claim=claim, notary=notary, reasons="The subscription lapsed.")
    claim.refresh_from_db()
    assert claim.state == "rejected"


def test_the_notary_sees_the_problem_up_front_and_an_approval_is_refused_on_the_page(
    claim, subscription, notary, notary_identity
) -> None:
    subscription_lapse(subscription=subscription, reason="renewal unpaid past grace")
    client = signed_in_client(notary)
    page = client.get(f"/notary/claims/{claim.pk}/").content.decode()
    assert '<p class="errors" role="alert">Approval is not possible now: Northwind' in page
    assert "Record the decision" in page  # the form stays: rejecting is still possible
    before = snapshot(claim), footprint()
    refused = client.post(
        f"/notary/claims/{claim.pk}/decide/",
        {"action": "approve", "reasons": REASONS, "identity": notary_identity.to_string()},
    )
    assert refused.status_code == 400
    assert "has no active escrow subscription for Ledger Pro" in refused.content.decode()
    assert (snapshot(claim), footprint()) == before
    rejected = client.post(
        f"/notary/claims/{claim.pk}/decide/",
        {"action": "reject", "reasons": "The subscription lapsed while the claim waited."},
    )
    assert rejected.status_code == 302
    claim.refresh_from_db()
    assert claim.state == "rejected"


def test_an_eligible_claim_shows_no_problem(claim, notary) -> None:
    assert claim_approval_problem(claim=claim) == ""
    page = signed_in_client(notary).get(f"/notary/claims/{claim.pk}/").content.decode()
    assert "Approval is not possible now" not in page


def test_a_subscription_cancelled_at_its_period_end_still_covers_the_claim(
    claim, subscription, subscriber, notary, notary_identity
) -> None:
    subscription_cancel_at_period_end(
        subscription=subscription, actor=subscriber, reason="moving to another product"
    )
    subscription.refresh_from_db()
    assert subscription.state == "active"
    assert claim_approval_problem(claim=claim) == ""
    release_approve(claim=claim, notary=notary, reasons=REASONS, identities=[notary_identity])
    claim.refresh_from_db()
    assert claim.state == "released"
