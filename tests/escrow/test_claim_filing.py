"""A claim always ends somewhere: its evidence is stored before anything that records it
commits, an organisation has one open claim per product, evidence is required, and a
claim whose vendor notice went missing is picked up by the scheduled check.

Storage failures are real: the primary site is a folder that cannot be created (a file
stands where it should be) or an S3 endpoint that refuses connections."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.db.models.signals import post_save
from django.test import Client
from django.utils import timezone

from escrow.links import vendor_claim_link
from escrow.models import ClaimEvidence, ReleaseClaim
from escrow.services.claims import (
    claim_file,
    claim_notify_vendor,
    claim_provide_evidence,
    claim_reject,
    claim_request_evidence,
    claim_withdraw,
    claims_contest_elapsed,
    open_claim_of,
)
from escrow.services.evidence import EvidenceNotStored, Upload
from records.models import AuditEntry, Notification, StoredFile
from tests.conftest import signed_in_client
from tests.factories import (
    EVIDENCE_PDF,
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
)
from tests.s3server import closed_endpoint_url, s3_site_config

STATEMENT = "Acme Software B.V. was declared bankrupt on 1 November."
NOT_STORED = "Your documents could not be stored just now"


@pytest.fixture
def eligible(licence, subscriber, staff, product, notary, notary_identity) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)


def footprint() -> dict[str, int]:
    return {
        "claims": ReleaseClaim.objects.count(),
        "evidence": ClaimEvidence.objects.count(),
        "audit": AuditEntry.objects.count(),
        "notifications": Notification.objects.count(),
    }


def file_claim(product, subscriber, uploads=None) -> ReleaseClaim:
    return claim_file(
        product=product,
        filed_by=subscriber,
        condition="insolvency",
        statement=STATEMENT,
        uploads=[Upload("ruling.pdf", EVIDENCE_PDF)] if uploads is None else uploads,
    )


def break_the_primary_site(settings, tmp_path: Path, how: str) -> list:
    """Make the primary site fail for real; returns the working configuration."""
    working = list(settings.ESCROW_SITES)
    if how == "folder":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file stands where the site's folder should be\n")
        broken = dict(working[0], path=str(blocker / "primary"))
    else:
        broken = s3_site_config("primary", "vault-primary", closed_endpoint_url())
    settings.ESCROW_SITES = [broken, *working[1:]]
    return working


# --- evidence is stored first ------------------------------------------------------


@pytest.mark.parametrize("how", ["folder", "s3 endpoint down"])
def test_a_storage_failure_files_no_claim_and_a_retry_files_exactly_one(
    how, eligible, product, subscriber, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    working = break_the_primary_site(settings, tmp_path, how)
    before = footprint()
    with pytest.raises(EvidenceNotStored) as refused:
        file_claim(product, subscriber)
    assert refused.value.messages == [
        f"{NOT_STORED} (the document store is not answering). Nothing was recorded; "
        "please try again in a few minutes."
    ]
    assert footprint() == before
    assert open_claim_of(organisation=subscriber.organisation, product=product) is None

    settings.ESCROW_SITES = working
    with django_capture_on_commit_callbacks(execute=True):
        claim = file_claim(product, subscriber)
    assert ReleaseClaim.objects.get() == claim
    claim.refresh_from_db()
    assert claim.state == "vendor_notified"
    evidence = claim.evidence.get()
    assert evidence.key.startswith("evidence/filing-")
    assert StoredFile.objects.filter(key=evidence.key).exists()
    filed = AuditEntry.objects.get(action="releaseclaim.file")
    assert filed.details == {"evidence": [{"file": "ruling.pdf", "sha256": evidence.sha256}]}


def test_the_portal_shows_the_storage_failure_and_files_nothing(
    eligible, product, subscriber, settings, tmp_path
) -> None:
    break_the_primary_site(settings, tmp_path, "folder")
    before = footprint()
    page = signed_in_client(subscriber).post(
        "/portal/claims/",
        {
            "product": product.pk,
            "condition": "insolvency",
            "statement": STATEMENT,
            "documents": [SimpleUploadedFile("ruling.pdf", EVIDENCE_PDF)],
        },
    )
    assert page.status_code == 200
    assert f'<ul class="errorlist nonfield"><li>{NOT_STORED}' in page.content.decode()
    assert footprint() == before


def test_more_evidence_that_cannot_be_stored_leaves_the_claim_waiting_for_it(
    eligible, product, subscriber, notary, settings, tmp_path
) -> None:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    # The contest period ended; the notary asks for more.
    ReleaseClaim.objects.filter(pk=claim.pk).update(contest_deadline=timezone.now())
    claims_contest_elapsed(now=timezone.now())
    claim.refresh_from_db()
    claim_request_evidence(claim=claim, notary=notary, reasons="Add the court's ruling.")
    working = break_the_primary_site(settings, tmp_path, "folder")
    before = footprint()
    client = signed_in_client(subscriber)
    page = client.post(
        f"/portal/claims/{claim.pk}/evidence/",
        {"documents": [SimpleUploadedFile("ruling-2.pdf", EVIDENCE_PDF + b"%2\n")]},
        follow=True,
    )
    assert page.status_code == 200
    assert NOT_STORED in page.content.decode()
    claim.refresh_from_db()
    assert claim.state == "evidence_requested"
    assert footprint() == before

    settings.ESCROW_SITES = working
    claim_provide_evidence(
        claim=claim, actor=subscriber, uploads=[Upload("ruling-2.pdf", EVIDENCE_PDF + b"%2\n")]
    )
    claim.refresh_from_db()
    assert claim.state == "under_review"
    assert claim.evidence.count() == 2


def test_a_vendor_contest_whose_evidence_cannot_be_stored_changes_nothing(
    eligible, product, subscriber, settings, tmp_path
) -> None:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    link = vendor_claim_link(claim=claim)
    working = break_the_primary_site(settings, tmp_path, "folder")
    before = footprint()
    contest = {
        "statement": "We are solvent.",
        "documents": [SimpleUploadedFile("accounts.pdf", EVIDENCE_PDF + b"%acc\n")],
    }
    page = Client().post(link, contest)
    assert page.status_code == 200
    assert NOT_STORED in page.content.decode()
    claim.refresh_from_db()
    assert (claim.state, claim.vendor_statement) == ("vendor_notified", "")
    assert footprint() == before

    settings.ESCROW_SITES = working
    contest["documents"] = [SimpleUploadedFile("accounts.pdf", EVIDENCE_PDF + b"%acc\n")]
    assert Client().post(link, contest).status_code == 302
    claim.refresh_from_db()
    assert claim.state == "under_review"
    assert claim.evidence.filter(side="vendor").count() == 1


# --- evidence is required ----------------------------------------------------------


@pytest.mark.parametrize("uploads", [None, []])
def test_a_claim_without_evidence_is_refused(uploads, eligible, product, subscriber) -> None:
    before = footprint()
    with pytest.raises(ValidationError) as refused:
        claim_file(
            product=product,
            filed_by=subscriber,
            condition="insolvency",
            statement=STATEMENT,
            uploads=uploads,
        )
    assert refused.value.message_dict == {
        "documents": [
            "Add at least one document as evidence (a court ruling, a register extract, "
            "letters): a claim cannot be filed without evidence."
        ]
    }
    assert footprint() == before


def test_the_portal_form_says_evidence_is_required(eligible, product, subscriber) -> None:
    before = footprint()
    page = signed_in_client(subscriber).post(
        "/portal/claims/",
        {"product": product.pk, "condition": "insolvency", "statement": STATEMENT},
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert "Add at least one document as evidence" in body
    assert 'class="errorlist nonfield"' not in body  # it is the documents field's error
    assert footprint() == before


def test_providing_evidence_needs_a_document(eligible, product, subscriber) -> None:
    claim = make_claim(product=product, filed_by=subscriber)
    with pytest.raises(ValidationError, match="Add at least one document"):
        claim_provide_evidence(claim=claim, actor=subscriber, uploads=[])


# --- one open claim per organisation and product -----------------------------------


def test_a_second_open_claim_is_refused_naming_the_first_and_the_vendor_hears_once(
    eligible, product, subscriber, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = file_claim(product, subscriber)
    before = footprint()
    with (
        pytest.raises(ValidationError) as refused,
        django_capture_on_commit_callbacks(execute=True),
    ):
        file_claim(product, subscriber)
    assert refused.value.messages == [
        f"Northwind Logistics B.V. already has an open release claim for Ledger Pro: claim "
        f"#{first.pk} (vendor notified). Follow it under Claims, or withdraw it before "
        "filing another."
    ]
    assert footprint() == before
    vendor_mails = [
        m
        for m in mailoutbox
        if m.subject.endswith("Release claim for Ledger Pro by Northwind Logistics B.V.")
    ]
    assert len(vendor_mails) == 1


def test_the_portal_names_the_open_claim(eligible, product, subscriber) -> None:
    first = file_claim(product, subscriber)
    page = signed_in_client(subscriber).post(
        "/portal/claims/",
        {
            "product": product.pk,
            "condition": "cessation",
            "statement": STATEMENT,
            "documents": [SimpleUploadedFile("ruling.pdf", EVIDENCE_PDF)],
        },
    )
    assert page.status_code == 200
    assert f"already has an open release claim for Ledger Pro: claim #{first.pk}" in (
        page.content.decode()
    )
    assert ReleaseClaim.objects.count() == 1


@pytest.mark.parametrize("ending", ["withdrawn", "rejected"])
def test_once_the_open_claim_has_ended_a_new_one_may_be_filed(
    ending, eligible, product, subscriber, notary
) -> None:
    first = file_claim(product, subscriber)
    if ending == "withdrawn":
        claim_withdraw(claim=first, actor=subscriber, reason="filed too early")
    else:
        claim_notify_vendor(claim=first)
        ReleaseClaim.objects.filter(pk=first.pk).update(contest_deadline=timezone.now())
        claims_contest_elapsed(now=timezone.now())
        first.refresh_from_db()
        claim_reject(claim=first, notary=notary, reasons="No ruling was shown.")
    second = file_claim(product, subscriber)
    assert open_claim_of(organisation=subscriber.organisation, product=product) == second


def test_the_database_refuses_a_second_open_claim_written_around_the_service(
    eligible, product, subscriber
) -> None:
    first = file_claim(product, subscriber)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReleaseClaim.objects.create(
            claimant=first.claimant,
            filed_by=subscriber,
            product=product,
            condition="cessation",
            statement="A second claim, inserted directly.",
        )
    assert ReleaseClaim.objects.count() == 1


def test_a_claim_racing_another_filing_is_refused_naming_the_winner(
    eligible, product, subscriber
) -> None:
    """A second request files while this one stores its evidence (after this one's
    check): the index refuses this one, and the message names the other claim."""
    racing: list[ReleaseClaim] = []

    def other_request_files(sender, instance, created, **kwargs) -> None:
        if created and not racing:
            racing.append(
                ReleaseClaim.objects.create(
                    claimant=subscriber.organisation,
                    filed_by=subscriber,
                    product=product,
                    condition="cessation",
                    statement="The other request's claim.",
                )
            )

    post_save.connect(other_request_files, sender=StoredFile, weak=False)
    try:
        with pytest.raises(ValidationError, match=r"already has an open release claim") as refused:
            file_claim(product, subscriber)
    finally:
        post_save.disconnect(other_request_files, sender=StoredFile)
    assert f"claim #{racing[0].pk}" in refused.value.messages[0]
    assert list(ReleaseClaim.objects.all()) == racing
    assert not ClaimEvidence.objects.exists()
    assert not AuditEntry.objects.filter(action="releaseclaim.file").exists()


# --- no claim stays "filed" --------------------------------------------------------


def test_a_claim_whose_vendor_notice_was_lost_is_notified_by_the_scheduled_check(
    eligible, product, subscriber, vendor
) -> None:
    # Outside django_capture_on_commit_callbacks the queued notice never runs: lost.
    claim = file_claim(product, subscriber)
    assert claim.state == "filed"
    filed_at = claim.created_at
    claims_contest_elapsed(now=filed_at + timedelta(minutes=4))
    claim.refresh_from_db()
    assert claim.state == "filed"  # the notice may still be on its way

    claims_contest_elapsed(now=filed_at + timedelta(minutes=6))
    claim.refresh_from_db()
    assert claim.state == "vendor_notified"
    assert claim.contest_deadline is not None and claim.contest_deadline > timezone.now()
    assert (
        Notification.objects.filter(
            organisation=vendor, kind=Notification.Kind.RELEASE_CLAIM_FILED
        ).count()
        == 1
    )
    claims_contest_elapsed(now=filed_at + timedelta(minutes=30))
    assert Notification.objects.filter(organisation=vendor).count() == 1


def test_a_withdrawn_claim_is_never_notified_late(eligible, product, subscriber) -> None:
    claim = file_claim(product, subscriber)
    claim_withdraw(claim=claim, actor=subscriber)
    claims_contest_elapsed(now=claim.created_at + timedelta(hours=1))
    claim.refresh_from_db()
    assert claim.state == "withdrawn"
    assert claim.contest_deadline is None
