"""The escrow's signed links: each checker gives back what its maker's link names, and
nothing for a forged, expired or other kind of link, or a user who may no longer use it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import signing
from django.urls import resolve
from django.utils import timezone

from accounts.models import User
from escrow.links import (
    CERTIFICATE_SALT,
    EVIDENCE_SALT,
    RELEASE_SALT,
    VENDOR_CLAIM_SALT,
    certificate_from_link,
    certificate_link,
    claim_from_vendor_link,
    evidence_from_link,
    evidence_link,
    release_from_link,
    release_link,
    vendor_claim_link,
)
from escrow.models import ClaimEvidence, ClaimRelease, ReleaseClaim
from escrow.services.claims import (
    claim_file,
    claim_mark_uncontested,
    claim_notify_vendor,
    claim_start_review,
)
from escrow.services.deposits import deposit_acknowledge
from escrow.services.evidence import Upload
from escrow.services.release_keys import release_key_set
from escrow.services.releases import release_approve
from records.links import link_token
from tests import archives
from tests.deposits import deposit_through_pipeline
from tests.factories import make_acknowledged_deposit, make_active_subscription, make_deposit
from vault import age


def token_of(path: str) -> str:
    return resolve(path).kwargs["token"]


def tampered(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def an_hour_later(monkeypatch, settings) -> None:
    later = time.time() + settings.ESCROW_LINK_SECONDS + 1
    monkeypatch.setattr("records.links.time.time", lambda: later)


@pytest.fixture
def subscription(licence, subscriber, staff):
    return make_active_subscription(licence=licence, actor=subscriber, staff=staff)


@pytest.fixture
def claim(subscription, product, subscriber, notary, notary_identity) -> ReleaseClaim:
    """A filed claim with one piece of evidence, on an acknowledged deposit record."""
    make_acknowledged_deposit(product=product, notary=notary)
    return claim_file(
        product=product,
        filed_by=subscriber,
        condition="insolvency",
        statement="The vendor was declared bankrupt on 1 November.",
        uploads=[Upload("ruling.pdf", b"%PDF-1.4\n%%EOF\n")],
    )


@pytest.fixture
def release(subscription, product, subscriber, staff, notary, notary_identity) -> ClaimRelease:
    """A real release: a sealed deposit, a claim under review, the notary's approval."""
    deposit = deposit_through_pipeline(product=product, staff=staff, body=archives.tar_gz())
    deposit_acknowledge(deposit=deposit, notary=notary)
    release_key_set(
        actor=subscriber,
        method="recipient",
        recipient=age.X25519Identity.generate().recipient().to_string(),
    )
    claim = claim_file(
        product=product,
        filed_by=subscriber,
        condition="insolvency",
        statement="The vendor was declared bankrupt on 1 November.",
        uploads=[Upload("ruling.pdf", b"%PDF-1.4\n%%EOF\n")],
    )
    claim_notify_vendor(claim=claim)
    claim_mark_uncontested(claim=claim)
    claim_start_review(claim=claim, actor=None)
    claim.refresh_from_db()
    return release_approve(
        claim=claim,
        notary=notary,
        reasons="The court ruling of 3 November proves the insolvency.",
        identities=[notary_identity],
    )


# --- certificates -------------------------------------------------------------------


def test_a_certificate_link_names_its_deposit_and_user(product, subscriber) -> None:
    deposit = make_deposit(product=product, version="4.2.0")
    found = certificate_from_link(token_of(certificate_link(deposit=deposit, user=subscriber)))
    assert found is not None
    linked, user = found
    assert (linked.pk, linked.version, user.pk) == (deposit.pk, "4.2.0", subscriber.pk)
    assert linked.product.slug == "ledger-pro"


def test_a_forged_certificate_link_opens_nothing(product, subscriber) -> None:
    deposit = make_deposit(product=product)
    token = token_of(certificate_link(deposit=deposit, user=subscriber))
    assert certificate_from_link(tampered(token)) is None
    forged = signing.dumps(
        {"deposit": deposit.pk, "user": subscriber.pk, "exp": int(time.time()) + 60},
        salt=CERTIFICATE_SALT,
        key="z" * 50,
    )
    assert certificate_from_link(forged) is None


def test_a_link_of_another_kind_opens_no_certificate(product, subscriber) -> None:
    deposit = make_deposit(product=product)
    token = link_token(salt=EVIDENCE_SALT, deposit=deposit.pk, user=subscriber.pk)
    assert certificate_from_link(token) is None


def test_an_expired_certificate_link_opens_nothing(
    product, subscriber, monkeypatch, settings
) -> None:
    deposit = make_deposit(product=product)
    token = token_of(certificate_link(deposit=deposit, user=subscriber))
    an_hour_later(monkeypatch, settings)
    assert certificate_from_link(token) is None


def test_a_certificate_link_of_a_deactivated_user_opens_nothing(product, subscriber) -> None:
    deposit = make_deposit(product=product)
    token = token_of(certificate_link(deposit=deposit, user=subscriber))
    User.objects.filter(pk=subscriber.pk).update(is_active=False)
    assert certificate_from_link(token) is None


# --- evidence -----------------------------------------------------------------------


def test_an_evidence_link_names_its_document_and_viewer(claim) -> None:
    evidence = claim.evidence.get()
    found = evidence_from_link(token_of(evidence_link(evidence=evidence, viewer="notary:7")))
    assert found is not None
    linked, viewer = found
    assert (linked.pk, linked.filename, viewer) == (evidence.pk, "ruling.pdf", "notary:7")


def test_a_forged_or_expired_evidence_link_opens_nothing(claim, monkeypatch, settings) -> None:
    evidence = claim.evidence.get()
    token = token_of(evidence_link(evidence=evidence, viewer="notary:7"))
    assert evidence_from_link(tampered(token)) is None
    assert evidence_from_link(link_token(salt=RELEASE_SALT, evidence=evidence.pk)) is None
    an_hour_later(monkeypatch, settings)
    assert evidence_from_link(token) is None


def test_an_evidence_link_naming_no_document_opens_nothing(claim) -> None:
    missing = ClaimEvidence.objects.order_by("-pk").first().pk + 1
    assert evidence_from_link(link_token(salt=EVIDENCE_SALT, evidence=missing, viewer="x")) is None


# --- releases -----------------------------------------------------------------------


def test_a_release_link_names_the_release_for_the_claimants_user(release, subscriber) -> None:
    found = release_from_link(token_of(release_link(release=release, user=subscriber)))
    assert found is not None
    linked, user = found
    assert (linked.pk, linked.claim_id, user.pk) == (release.pk, release.claim_id, subscriber.pk)


def test_a_forged_or_expired_release_link_opens_nothing(
    release, subscriber, monkeypatch, settings
) -> None:
    token = token_of(release_link(release=release, user=subscriber))
    assert release_from_link(tampered(token)) is None
    assert release_from_link(link_token(salt=CERTIFICATE_SALT, release=release.pk)) is None
    an_hour_later(monkeypatch, settings)
    assert release_from_link(token) is None


def test_a_release_link_of_a_user_outside_the_claimant_opens_nothing(
    release, other_customer
) -> None:
    assert release_from_link(token_of(release_link(release=release, user=other_customer))) is None


def test_a_release_link_of_a_deactivated_user_opens_nothing(release, subscriber) -> None:
    token = token_of(release_link(release=release, user=subscriber))
    User.objects.filter(pk=subscriber.pk).update(is_active=False)
    assert release_from_link(token) is None


# --- the vendor's claim link --------------------------------------------------------


def test_the_vendor_link_names_its_claim_while_the_claim_is_open(claim) -> None:
    claim_notify_vendor(claim=claim)
    found = claim_from_vendor_link(token_of(vendor_claim_link(claim=claim)))
    assert found is not None
    assert (found.pk, found.product.slug) == (claim.pk, "ledger-pro")


def test_a_forged_vendor_link_opens_nothing(claim) -> None:
    token = token_of(vendor_claim_link(claim=claim))
    assert claim_from_vendor_link(tampered(token)) is None
    forged = signing.dumps({"claim": claim.pk}, salt=VENDOR_CLAIM_SALT, key="v" * 50)
    assert claim_from_vendor_link(forged) is None
    assert claim_from_vendor_link(link_token(salt=EVIDENCE_SALT, claim=claim.pk)) is None


def test_the_vendor_link_expires_with_the_contest_deadline(claim) -> None:
    claim_notify_vendor(claim=claim)
    token = token_of(vendor_claim_link(claim=claim))
    now = timezone.now()
    ReleaseClaim.objects.filter(pk=claim.pk).update(contest_deadline=now + timedelta(minutes=1))
    assert claim_from_vendor_link(token) is not None
    ReleaseClaim.objects.filter(pk=claim.pk).update(contest_deadline=now - timedelta(seconds=1))
    assert claim_from_vendor_link(token) is None


def test_without_a_deadline_the_vendor_link_opens_nothing(claim) -> None:
    token = token_of(vendor_claim_link(claim=claim))
    assert claim.contest_deadline is None
    assert claim_from_vendor_link(token) is None
