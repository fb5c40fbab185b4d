"""A voluntary release is the vendor's act, never a customer's choice.

A customer cannot claim one (neither the portal's form nor the service takes it), so
every claim a customer files waits out the full contest period. The vendor releases
voluntarily through its signed claim link, with a written statement; staff may do it
on the vendor's written instruction, with a stated reason. Both are audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from escrow.business_days import add_business_days
from escrow.links import vendor_claim_link
from escrow.models import ReleaseClaim
from escrow.services.claims import (
    claim_file,
    claim_notify_vendor,
    claim_release_voluntarily_by_staff,
    claim_release_voluntarily_by_vendor,
    claims_contest_elapsed,
)
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import (
    EVIDENCE_PDF,
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
)
from tests.state_machines import snapshot

STATEMENT = "Acme Software B.V. releases Ledger Pro to its licensees of its own will."
REASON = "Acme's signed letter of 2 March 2026 (ticket 4411) instructs us to release."


@pytest.fixture
def eligible(licence, subscriber, staff, product, notary, notary_identity) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)


def vendor_notified(product, subscriber) -> ReleaseClaim:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    return claim


def history(claim: ReleaseClaim) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(
            object_type=ReleaseClaim._meta.label, object_id=str(claim.pk)
        ).order_by("sequence")
    )


# --- a customer cannot choose a voluntary release -----------------------------------


def test_the_portal_form_does_not_offer_or_take_a_voluntary_release(
    eligible, product, subscriber
) -> None:
    client = signed_in_client(subscriber)
    page = client.get("/portal/claims/").content.decode()
    assert 'value="insolvency"' in page
    assert 'value="voluntary"' not in page
    posted = client.post(
        "/portal/claims/",
        {"product": product.pk, "condition": "voluntary", "statement": "Please release."},
    )
    assert posted.status_code == 200
    assert "Select a valid choice. voluntary is not one of the available choices." in (
        posted.content.decode()
    )
    assert not ReleaseClaim.objects.exists()


def test_the_service_refuses_a_customer_s_voluntary_claim(eligible, product, subscriber) -> None:
    audit_before = AuditEntry.objects.count()
    with pytest.raises(ValidationError, match="A voluntary release is the vendor's own act"):
        claim_file(
            product=product, filed_by=subscriber, condition="voluntary", statement="Release it."
        )
    assert not ReleaseClaim.objects.exists()
    assert AuditEntry.objects.count() == audit_before


def test_a_customer_s_claim_waits_the_full_contest_period(
    eligible, product, subscriber, django_capture_on_commit_callbacks
) -> None:
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        filed = signed_in_client(subscriber).post(
            "/portal/claims/",
            {
                "product": product.pk,
                "condition": "insolvency",
                "statement": "Bankrupt.",
                "documents": [SimpleUploadedFile("ruling.pdf", EVIDENCE_PDF)],
            },
        )
    assert filed.status_code == 302
    claim = ReleaseClaim.objects.get()
    assert claim.state == "vendor_notified"
    earliest = add_business_days(
        before,
        settings.ESCROW_CONTEST_BUSINESS_DAYS,
        country=product.vendor.country,
        time_zone=product.vendor.effective_time_zone,
    )
    assert claim.contest_deadline is not None
    assert earliest <= claim.contest_deadline <= earliest + timedelta(minutes=1)
    vendor_mail = [m for m in mail.outbox if "Release claim for Ledger Pro" in m.subject]
    assert len(vendor_mail) == 1
    assert "contest it until" in vendor_mail[0].body
    # The scheduled task leaves it alone until the deadline...
    assert claims_contest_elapsed(now=timezone.now()) == []
    # ...and the vendor's link still lets it contest.
    link = vendor_claim_link(claim=claim)
    page = Client().get(link).content.decode()
    assert "You may contest until" in page
    assert "Release voluntarily" in page
    contested = Client().post(link, {"statement": "We are solvent; see our accounts."})
    assert contested.status_code == 302
    claim.refresh_from_db()
    assert (claim.state, claim.condition) == ("under_review", "insolvency")
    assert "releaseclaim.contest" in [entry.action for entry in history(claim)]


# --- the vendor releases voluntarily through its signed link ------------------------


def test_the_vendor_releases_voluntarily_through_its_link_and_it_is_audited(
    eligible, product, subscriber
) -> None:
    claim = vendor_notified(product, subscriber)
    link = vendor_claim_link(claim=claim)
    client = Client()
    posted = client.post(
        link, {"action": "release_voluntarily", "voluntary-statement": f"  {STATEMENT}\n"}
    )
    assert posted.status_code == 302
    claim.refresh_from_db()
    # On to the notary at once, well before the contest deadline; the notary decides.
    assert claim.contest_deadline is not None and timezone.now() < claim.contest_deadline
    assert (claim.state, claim.condition, claim.vendor_statement) == (
        "under_review",
        "voluntary",
        "",
    )
    released, review = history(claim)[-2:]
    assert (released.action, released.from_state, released.to_state) == (
        "releaseclaim.release_voluntarily",
        "vendor_notified",
        "uncontested",
    )
    assert (released.actor, released.actor_label, released.reason) == (None, "vendor", STATEMENT)
    assert released.details == {
        "claimed_condition": "insolvency",
        "by": "vendor's signed claim link",
    }
    assert (review.action, review.to_state) == ("releaseclaim.start_review", "under_review")
    page = client.get(link).content.decode()
    assert "You released Ledger Pro voluntarily" in page
    assert "Release voluntarily</button>" not in page
    # The claimant and the notary see it in the claim's history.
    shown = signed_in_client(subscriber).get(f"/portal/claims/{claim.pk}/").content.decode()
    assert "Voluntary release by the vendor" in shown
    assert STATEMENT in shown


def test_a_voluntary_release_needs_a_written_statement(eligible, product, subscriber) -> None:
    claim = vendor_notified(product, subscriber)
    before = snapshot(claim)
    page = Client().post(
        vendor_claim_link(claim=claim),
        {"action": "release_voluntarily", "voluntary-statement": "   "},
    )
    assert page.status_code == 200
    assert "This field is required." in page.content.decode()
    with pytest.raises(ValidationError, match="needs a written statement"):
        claim_release_voluntarily_by_vendor(claim=claim, statement=" \n ")
    assert snapshot(claim) == before


def test_a_contested_claim_cannot_then_be_released_by_the_link(
    eligible, product, subscriber
) -> None:
    claim = vendor_notified(product, subscriber)
    link = vendor_claim_link(claim=claim)
    Client().post(link, {"statement": "We are solvent."})
    claim.refresh_from_db()
    before = snapshot(claim)
    page = Client().post(link, {"action": "release_voluntarily", "voluntary-statement": "OK."})
    assert page.status_code == 200
    assert "This claim has moved on; nothing was changed." in page.content.decode()
    assert snapshot(claim) == before


# --- staff, on the vendor's written instruction, in the admin -----------------------


def release_in_admin(staff, claim: ReleaseClaim, reason: str):
    return signed_in_client(staff).post(
        "/admin/escrow/releaseclaim/",
        {"action": "release_voluntarily", "_selected_action": [claim.pk], "reason": reason},
        follow=True,
    )


def test_staff_s_admin_action_needs_a_reason(eligible, product, subscriber, staff) -> None:
    claim = vendor_notified(product, subscriber)
    before = snapshot(claim)
    response = release_in_admin(staff, claim, reason="  ")
    shown = " ".join(str(message) for message in response.context["messages"])
    assert "needs a reason naming the vendor's written instruction" in shown
    assert snapshot(claim) == before


def test_staff_release_on_the_vendor_s_instruction_is_audited_with_the_reason(
    eligible, product, subscriber, staff
) -> None:
    claim = vendor_notified(product, subscriber)
    response = release_in_admin(staff, claim, reason=REASON)
    shown = " ".join(str(message) for message in response.context["messages"])
    assert "Released voluntarily: 1 done." in shown
    claim.refresh_from_db()
    assert (claim.state, claim.condition) == ("under_review", "voluntary")
    released = next(e for e in history(claim) if e.action == "releaseclaim.release_voluntarily")
    assert (released.actor, released.reason) == (staff, REASON)
    assert released.details["by"] == "staff on the vendor's written instruction"


@pytest.mark.parametrize("who", ["subscriber", "notary"])
def test_nobody_else_releases_voluntarily(who, eligible, product, subscriber, request) -> None:
    claim = vendor_notified(product, subscriber)
    before = snapshot(claim)
    with pytest.raises(PermissionDenied):
        claim_release_voluntarily_by_staff(
            claim=claim, actor=request.getfixturevalue(who), reason=REASON
        )
    assert snapshot(claim) == before
