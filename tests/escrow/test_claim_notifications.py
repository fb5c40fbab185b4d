"""Every step of a release claim tells the parties it concerns: the claimant, the
vendor, every notary and staff. Each test names, for one step, exactly who is told
(the Notification rows the step wrote) and, for the first, the addresses mailed."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role
from escrow.models import ReleaseClaim
from escrow.services.claim_notices import claim_notices_queue
from escrow.services.claims import (
    claim_contest_by_vendor,
    claim_notify_vendor,
    claim_provide_evidence,
    claim_reject,
    claim_release_voluntarily_by_vendor,
    claim_request_evidence,
    claim_withdraw,
    claims_contest_elapsed,
)
from escrow.services.deposits import deposit_acknowledge
from escrow.services.evidence import Upload
from escrow.services.release_keys import release_key_set
from escrow.services.releases import release_approve
from records.models import Notification
from tests.deposits import deposit_through_pipeline
from tests.factories import EVIDENCE_PDF, UserFactory, make_active_subscription, make_claim
from vault import age

K = Notification.Kind
PUBLIC = "https://escrow.example"


@pytest.fixture
def eligible(settings, licence, subscriber, staff, product, notary, notary_identity) -> None:
    settings.ESCROW_PUBLIC_URL = PUBLIC
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    body_deposit = deposit_through_pipeline(product=product, staff=staff)
    deposit_acknowledge(deposit=body_deposit, notary=notary)


@pytest.fixture
def second_notary(db):
    user = UserFactory(email="second@notaris.example", role=Role.NOTARY, organisation=None)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


def told(claim: ReleaseClaim, since: int) -> list[tuple[str, str]]:
    """(who, kind) of every notification written after row ``since``, sorted; who is
    claimant, vendor, notaries or staff."""
    rows = Notification.objects.filter(pk__gt=since).select_related("organisation")
    names = {claim.claimant_id: "claimant", claim.product.vendor_id: "vendor"}
    return sorted(
        (names[row.organisation_id] if row.organisation_id else str(row.audience), str(row.kind))
        for row in rows
    )


def mark() -> int:
    last = Notification.objects.order_by("-pk").first()
    return last.pk if last else 0


def vendor_notified(product, subscriber) -> ReleaseClaim:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    return claim


def under_review(product, subscriber) -> ReleaseClaim:
    claim = vendor_notified(product, subscriber)
    ReleaseClaim.objects.filter(pk=claim.pk).update(contest_deadline=timezone.now())
    claims_contest_elapsed(now=timezone.now())
    claim.refresh_from_db()
    return claim


def body_of(since: int, who: str, claim: ReleaseClaim) -> str:
    rows = Notification.objects.filter(pk__gt=since)
    if who in ("notaries", "staff"):
        return "\n".join(rows.filter(audience=who).values_list("body", flat=True))
    organisation = claim.claimant if who == "claimant" else claim.product.vendor
    return "\n".join(rows.filter(organisation=organisation).values_list("body", flat=True))


def test_filing_tells_the_vendor_the_claimant_and_staff_by_mail(
    eligible,
    product,
    subscriber,
    vendor,
    staff,
    second_notary,
    mailoutbox,
    django_capture_on_commit_callbacks,
) -> None:
    since = mark()
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        claim = make_claim(product=product, filed_by=subscriber)
    claim.refresh_from_db()
    assert told(claim, since) == [
        ("claimant", K.RELEASE_CLAIM_RECEIVED),
        ("staff", K.RELEASE_CLAIM_FILED),
        ("vendor", K.RELEASE_CLAIM_FILED),
    ]
    mailed = sorted(tuple(message.to) for message in mailoutbox)
    assert mailed == sorted(
        [
            (vendor.contact_email,),
            tuple(sorted([claim.claimant.contact_email, subscriber.email])),
            (staff.email,),
        ]
    )
    assert f"Follow it: {PUBLIC}/portal/claims/{claim.pk}/" in body_of(since, "claimant", claim)
    assert f"{PUBLIC}/vendor/claims/" in body_of(since, "vendor", claim)
    assert f"{PUBLIC}/admin/escrow/releaseclaim/{claim.pk}/change/" in body_of(
        since, "staff", claim
    )


def test_a_contest_tells_the_claimant_and_every_notary(
    eligible,
    product,
    subscriber,
    notary,
    second_notary,
    mailoutbox,
    django_capture_on_commit_callbacks,
) -> None:
    claim = vendor_notified(product, subscriber)
    since = mark()
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        claim_contest_by_vendor(claim=claim, statement="We are solvent; see our accounts.")
    assert told(claim, since) == [
        ("claimant", K.RELEASE_CLAIM_CONTESTED),
        ("notaries", K.RELEASE_CLAIM_CONTESTED),
    ]
    notary_mail = next(m for m in mailoutbox if m.subject.endswith("waits for your review"))
    assert notary_mail.to == sorted([notary.email, second_notary.email])
    assert "We are solvent; see our accounts." in body_of(since, "claimant", claim)
    assert f"{PUBLIC}/notary/claims/{claim.pk}/" in body_of(since, "notaries", claim)


def test_the_end_of_the_contest_period_tells_the_notaries_and_the_claimant(
    eligible, product, subscriber
) -> None:
    claim = vendor_notified(product, subscriber)
    since = mark()
    ReleaseClaim.objects.filter(pk=claim.pk).update(contest_deadline=timezone.now())
    claims_contest_elapsed(now=timezone.now())
    assert told(claim, since) == [
        ("claimant", K.RELEASE_CLAIM_READY),
        ("notaries", K.RELEASE_CLAIM_READY),
    ]
    assert "The vendor's contest period ended without a contest" in body_of(
        since, "notaries", claim
    )


def test_a_voluntary_release_tells_the_notaries_and_the_claimant(
    eligible, product, subscriber
) -> None:
    claim = vendor_notified(product, subscriber)
    since = mark()
    claim_release_voluntarily_by_vendor(claim=claim, statement="We release of our own will.")
    assert told(claim, since) == [
        ("claimant", K.RELEASE_CLAIM_READY),
        ("notaries", K.RELEASE_CLAIM_READY),
    ]
    assert "Acme Software B.V. released voluntarily" in body_of(since, "claimant", claim)


def test_asking_for_evidence_tells_the_claimant_and_providing_it_tells_the_notaries(
    eligible, product, subscriber, notary
) -> None:
    claim = under_review(product, subscriber)
    since = mark()
    claim_request_evidence(claim=claim, notary=notary, reasons="Add the ruling itself.")
    assert told(claim, since) == [("claimant", K.RELEASE_CLAIM_DECIDED)]
    assert "Add the ruling itself." in body_of(since, "claimant", claim)
    since = mark()
    claim_provide_evidence(
        claim=claim, actor=subscriber, uploads=[Upload("ruling.pdf", EVIDENCE_PDF + b"%2\n")]
    )
    assert told(claim, since) == [("notaries", K.RELEASE_CLAIM_READY)]


def test_a_rejection_tells_the_claimant_the_vendor_and_staff(
    eligible, product, subscriber, notary
) -> None:
    claim = under_review(product, subscriber)
    since = mark()
    claim_reject(claim=claim, notary=notary, reasons="The ruling names another company.")
    assert told(claim, since) == [
        ("claimant", K.RELEASE_CLAIM_DECIDED),
        ("staff", K.RELEASE_CLAIM_OUTCOME),
        ("vendor", K.RELEASE_CLAIM_OUTCOME),
    ]
    for who in ("claimant", "vendor", "staff"):
        assert "The ruling names another company." in body_of(since, who, claim)


def test_an_approval_tells_the_claimant_the_vendor_and_staff(
    eligible, product, subscriber, notary, notary_identity
) -> None:
    release_key_set(
        actor=subscriber,
        method="recipient",
        recipient=age.X25519Identity.generate().recipient().to_string(),
    )
    claim = under_review(product, subscriber)
    since = mark()
    release_approve(
        claim=claim, notary=notary, reasons="The ruling proves it.", identities=[notary_identity]
    )
    assert told(claim, since) == [
        ("claimant", K.RELEASE_READY),
        ("staff", K.RELEASE_CLAIM_OUTCOME),
        ("vendor", K.RELEASE_CLAIM_OUTCOME),
    ]
    assert "The notary approved release claim" in body_of(since, "vendor", claim)


def test_a_withdrawal_tells_the_vendor_the_notaries_and_staff(
    eligible, product, subscriber
) -> None:
    claim = vendor_notified(product, subscriber)
    since = mark()
    claim_withdraw(claim=claim, actor=subscriber, reason="Settled with the vendor.")
    assert told(claim, since) == [
        ("notaries", K.RELEASE_CLAIM_WITHDRAWN),
        ("staff", K.RELEASE_CLAIM_WITHDRAWN),
        ("vendor", K.RELEASE_CLAIM_WITHDRAWN),
    ]


def test_a_vendor_that_never_heard_of_the_claim_is_not_told_of_its_withdrawal(
    eligible, product, subscriber
) -> None:
    claim = make_claim(product=product, filed_by=subscriber)  # its notice never went out
    since = mark()
    claim_withdraw(claim=claim, actor=subscriber)
    assert told(claim, since) == [
        ("notaries", K.RELEASE_CLAIM_WITHDRAWN),
        ("staff", K.RELEASE_CLAIM_WITHDRAWN),
    ]


def test_an_unknown_step_is_refused_by_name(eligible, product, subscriber) -> None:
    claim = make_claim(product=product, filed_by=subscriber)
    since = mark()
    with pytest.raises(ValueError, match="Unknown claim step 'decided'"):
        claim_notices_queue(claim=claim, step="decided")
    assert told(claim, since) == []


def test_long_names_are_cut_to_fit_a_subject(eligible, product, subscriber) -> None:
    claim = make_claim(product=product, filed_by=subscriber)
    claim.claimant.name = "Northwind " + "Logistics " * 19
    queued = claim_notices_queue(claim=claim, step="withdrawn")
    assert all(len(row.subject) <= 200 for row in queued)
    assert any(row.subject.endswith("…") for row in queued)
