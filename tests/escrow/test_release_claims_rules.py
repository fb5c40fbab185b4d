"""The rules around a release claim: who may file, which evidence is taken, how the
notary decides and releases, what the vendor may do, and that the notary's identity
is never kept. Every refusal is checked to have changed nothing."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.signals import task_prerun
from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import User
from billing.services import subscription_cancel, subscription_lapse
from escrow.links import evidence_link, release_link, vendor_claim_link
from escrow.models import ClaimEvidence, ClaimRelease, ReleaseClaim
from escrow.services.claims import (
    claim_contest_by_vendor,
    claim_file,
    claim_mark_uncontested,
    claim_notify_vendor,
    claim_reject,
    claim_request_evidence,
    claim_start_review,
    claims_contest_elapsed,
)
from escrow.services.deposits import deposit_acknowledge
from escrow.services.evidence import Upload
from escrow.services.release_keys import release_key_set
from escrow.services.releases import ApprovalRefused, notary_identity_store, release_approve
from records.models import AuditEntry, Notification, StoredFile
from records.services.transitions import TransitionRefused
from tests import archives
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import (
    LicenceFactory,
    OrganisationFactory,
    UserFactory,
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
)
from tests.state_machines import snapshot
from vault import age

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20) + b"\xff\xd9"
REASONS = "The court ruling of 3 November proves the insolvency."
STORE_PASSPHRASE = "vault door seventeen"


# --- fixtures and helpers ---------------------------------------------------------


@pytest.fixture
def subscription(licence, subscriber, staff):
    return make_active_subscription(licence=licence, actor=subscriber, staff=staff)


@pytest.fixture
def eligible(subscription, product, notary, notary_identity) -> None:
    """An active subscription and an acknowledged deposit record (no sealed file)."""
    make_acknowledged_deposit(product=product, notary=notary)


@pytest.fixture
def sealed_archive(subscription, product, staff, notary, notary_identity) -> bytes:
    """A real sealed, replicated and acknowledged deposit; returns the archive bytes."""
    body = archives.tar_gz()
    deposit = deposit_through_pipeline(product=product, staff=staff, body=body)
    deposit_acknowledge(deposit=deposit, notary=notary)
    return body


@pytest.fixture
def claimant_identity(subscriber) -> age.X25519Identity:
    """Organisation A's own age key; its recipient is the registered release key."""
    identity = age.X25519Identity.generate()
    release_key_set(
        actor=subscriber, method="recipient", recipient=identity.recipient().to_string()
    )
    return identity


@pytest.fixture
def fast_scrypt(settings) -> None:
    settings.ESCROW_IDENTITY_SCRYPT_WORK_FACTOR = 10


def footprint() -> dict[str, int]:
    """Everything a claim decision or filing could leave behind."""
    return {
        "claims": ReleaseClaim.objects.count(),
        "evidence": ClaimEvidence.objects.count(),
        "releases": ClaimRelease.objects.count(),
        "stored evidence": StoredFile.objects.filter(purpose="evidence").count(),
        "stored releases": StoredFile.objects.filter(purpose="release").count(),
        "audit": AuditEntry.objects.count(),
        "notifications": Notification.objects.count(),
    }


def unchanged(claim: ReleaseClaim) -> tuple[Any, dict[str, int]]:
    return snapshot(claim), footprint()


def under_review(product, subscriber, condition: str = "insolvency") -> ReleaseClaim:
    claim = make_claim(product=product, filed_by=subscriber, condition=condition)
    claim_notify_vendor(claim=claim)
    claim_mark_uncontested(claim=claim)
    claim_start_review(claim=claim, actor=None)
    claim.refresh_from_db()
    assert claim.state == "under_review"
    return claim


def another_subscriber(product, staff, n: int) -> User:
    """A user of one more customer organisation with an active subscription for the
    product (an organisation has one open claim per product)."""
    organisation = OrganisationFactory(name=f"Claimant {n} B.V.")
    licence = LicenceFactory(customer=organisation, product=product)
    user = UserFactory(email=f"user@claimant{n}.example", organisation=organisation)
    make_active_subscription(licence=licence, actor=user, staff=staff)
    return user


def vendor_notified(product, subscriber) -> ReleaseClaim:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    return claim


def file_with(product, subscriber, uploads: list[Upload]) -> ReleaseClaim:
    return claim_file(
        product=product,
        filed_by=subscriber,
        condition="insolvency",
        statement="The vendor was declared bankrupt on 1 November.",
        uploads=uploads,
    )


def primary_folder() -> Path:
    return Path(settings.ESCROW_SITES[0]["path"])


def decide(client: Client, claim: ReleaseClaim, **data: str):
    return client.post(f"/notary/claims/{claim.pk}/decide/", data)


def streamed(response) -> bytes:
    return b"".join(response.streaming_content)


def decrypted(sealed: bytes, identity: Any) -> bytes:
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), plain, [identity])
    return plain.getvalue()


def an_hour_later(monkeypatch) -> None:
    later = time.time() + settings.ESCROW_LINK_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)


# --- 1. who may file --------------------------------------------------------------


@pytest.mark.parametrize("subscription_state", ["none", "lapsed", "cancelled"])
def test_filing_is_refused_without_an_active_subscription(
    subscription_state, licence, product, subscriber, staff, notary
) -> None:
    make_acknowledged_deposit(product=product, notary=notary)
    if subscription_state != "none":
        current = make_active_subscription(licence=licence, actor=subscriber, staff=staff)
        if subscription_state == "lapsed":
            subscription_lapse(subscription=current, reason="invoice unpaid past grace")
        else:
            subscription_cancel(subscription=current, actor=subscriber, reason="no longer needed")
    before = footprint()
    with pytest.raises(ValidationError, match="has no active escrow subscription for Ledger Pro"):
        make_claim(product=product, filed_by=subscriber)
    assert footprint() == before


def test_filing_is_refused_while_no_deposit_is_acknowledged(subscription, product, subscriber):
    before = footprint()
    with pytest.raises(ValidationError, match="No deposit of Ledger Pro has been acknowledged"):
        make_claim(product=product, filed_by=subscriber)
    assert footprint() == before


@pytest.mark.parametrize("who", ["staff", "notary"])
def test_staff_and_notaries_may_not_file_a_claim(who, eligible, product, request) -> None:
    before = footprint()
    with pytest.raises(PermissionDenied, match="Only customer users"):
        make_claim(product=product, filed_by=request.getfixturevalue(who))
    assert footprint() == before


@pytest.mark.parametrize(
    ("situation", "message"),
    [
        ("no subscription", "Northwind Logistics B.V. has no active escrow subscription"),
        ("no deposit", "No deposit of Ledger Pro has been acknowledged"),
    ],
)
def test_the_portal_shows_why_filing_is_refused_and_files_nothing(
    situation, message, licence, product, subscriber, staff, notary
) -> None:
    if situation == "no subscription":
        make_acknowledged_deposit(product=product, notary=notary)
    else:
        make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    before = footprint()
    page = signed_in_client(subscriber).post(
        "/portal/claims/",
        {"product": product.pk, "condition": "insolvency", "statement": "Bankrupt."},
    )
    assert page.status_code == 200
    # The refusal is the form's own error, not only the eligibility list on the page.
    assert f'<ul class="errorlist nonfield"><li>{message}' in page.content.decode()
    assert footprint() == before


# --- 2. evidence ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("text named evidence.pdf", "evidence.pdf is not a PDF, PNG or JPEG"),
        ("empty file", "ruling.pdf is empty"),
        ("over the size limit", "big.pdf is larger than"),
        ("too many files", "At most 2 documents at once"),
    ],
)
def test_unacceptable_evidence_refuses_the_claim_and_stores_nothing(
    case, message, eligible, product, subscriber, settings
) -> None:
    settings.ESCROW_EVIDENCE_MAX_BYTES = 1024
    settings.ESCROW_EVIDENCE_MAX_FILES = 2
    uploads = {
        "text named evidence.pdf": [Upload("evidence.pdf", b"I promise this is a PDF.\n")],
        "empty file": [Upload("ruling.pdf", b"")],
        "over the size limit": [Upload("big.pdf", PDF + b"0" * 1024)],
        "too many files": [Upload(f"page{n}.pdf", PDF) for n in range(3)],
    }[case]
    before = footprint()
    with pytest.raises(ValidationError, match=message):
        file_with(product, subscriber, uploads)
    assert footprint() == before
    assert not (primary_folder() / "evidence").exists()


def test_evidence_is_judged_by_content_and_stored_sealed_for_the_notary(
    eligible, product, subscriber, notary_identity
) -> None:
    documents = {"scan.txt": PDF, "photo.pdf": PNG, "letter": JPEG}
    claim = file_with(product, subscriber, [Upload(n, c) for n, c in documents.items()])
    rows = list(claim.evidence.order_by("pk"))
    assert [(row.filename, row.content_type) for row in rows] == [
        ("scan.txt.pdf", "application/pdf"),
        ("photo.pdf.png", "image/png"),
        ("letter.jpg", "image/jpeg"),
    ]
    assert StoredFile.objects.filter(purpose="evidence").count() == 3
    for row, original in zip(rows, documents.values(), strict=True):
        sealed = (primary_folder() / row.key).read_bytes()
        assert original not in sealed
        assert sealed.startswith(b"age-encryption.org/v1\n")
        assert decrypted(sealed, notary_identity) == original


# --- 3. reasons -------------------------------------------------------------------


@pytest.mark.parametrize("reasons", ["", "  \n\t "])
@pytest.mark.parametrize("decision", ["request_evidence", "reject", "approve"])
def test_a_decision_without_written_reasons_is_refused(
    decision, reasons, eligible, product, subscriber, notary, notary_identity, claimant_identity
) -> None:
    claim = under_review(product, subscriber)
    before = unchanged(claim)
    with pytest.raises(ValidationError, match="A decision needs written reasons"):
        if decision == "request_evidence":
            claim_request_evidence(claim=claim, notary=notary, reasons=reasons)
        elif decision == "reject":
            claim_reject(claim=claim, notary=notary, reasons=reasons)
        else:
            release_approve(
                claim=claim, notary=notary, reasons=reasons, identities=[notary_identity]
            )
    assert unchanged(claim) == before
    claim.refresh_from_db()
    assert claim.state == "under_review"


# --- 4. approval: the identity and the release key --------------------------------


def test_approval_with_an_identity_that_does_not_open_the_deposit_is_refused(
    sealed_archive, product, subscriber, notary, claimant_identity
) -> None:
    claim = under_review(product, subscriber)
    before = unchanged(claim)
    with pytest.raises(ApprovalRefused, match="The identity you gave does not open this deposit"):
        release_approve(
            claim=claim,
            notary=notary,
            reasons=REASONS,
            identities=[age.X25519Identity.generate()],
        )
    assert unchanged(claim) == before
    claim.refresh_from_db()
    assert claim.state == "under_review"
    assert not ClaimRelease.objects.exists()


def test_the_notary_page_refuses_a_wrong_identity_without_echoing_it(
    sealed_archive, product, subscriber, notary, claimant_identity
) -> None:
    claim = under_review(product, subscriber)
    wrong = age.X25519Identity.generate().to_string()
    before = unchanged(claim)
    page = decide(
        signed_in_client(notary), claim, action="approve", reasons=REASONS, identity=wrong
    )
    assert page.status_code == 400
    body = page.content.decode()
    assert "The identity you gave does not open this deposit" in body
    assert wrong not in body
    assert wrong[len("AGE-SECRET-KEY-1") :][:16] not in body
    assert unchanged(claim) == before


@pytest.mark.parametrize("garbage", ["hello notary", "AGE-SECRET-KEY-1NOTAKEY", "age1qqqq"])
def test_garbage_in_the_identity_field_gets_a_clear_error(
    garbage, sealed_archive, product, subscriber, notary, claimant_identity
) -> None:
    claim = under_review(product, subscriber)
    before = unchanged(claim)
    page = decide(
        signed_in_client(notary), claim, action="approve", reasons=REASONS, identity=garbage
    )
    assert page.status_code == 400
    body = page.content.decode()
    assert "That is not an age identity file (AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1..." in body
    assert garbage not in body
    assert unchanged(claim) == before


def test_approval_is_refused_while_the_claimant_has_no_release_key(
    sealed_archive, product, subscriber, notary, notary_identity
) -> None:
    claim = under_review(product, subscriber)
    before = unchanged(claim)
    with pytest.raises(
        ApprovalRefused,
        match=re.escape("Northwind Logistics B.V. has not registered a release key"),
    ):
        release_approve(claim=claim, notary=notary, reasons=REASONS, identities=[notary_identity])
    assert unchanged(claim) == before


def test_a_stored_identity_opens_only_with_its_passphrase(
    fast_scrypt, sealed_archive, product, subscriber, notary, notary_identity, claimant_identity
) -> None:
    notary_identity_store(
        notary=notary, identity_text=notary_identity.to_string(), passphrase=STORE_PASSPHRASE
    )
    claim = under_review(product, subscriber)
    client = signed_in_client(notary)
    before = unchanged(claim)
    refused = decide(
        client, claim, action="approve", reasons=REASONS, passphrase="vault door eighteen"
    )
    assert refused.status_code == 400
    assert "That passphrase does not unlock your stored identity." in refused.content.decode()
    assert unchanged(claim) == before

    approved = decide(client, claim, action="approve", reasons=REASONS, passphrase=STORE_PASSPHRASE)
    assert approved.status_code == 302
    claim.refresh_from_db()
    assert claim.state == "released"
    assert ClaimRelease.objects.get(claim=claim).recipient == (
        claimant_identity.recipient().to_string()
    )


# --- 5. the vendor ----------------------------------------------------------------


def test_the_vendor_cannot_contest_after_the_deadline(eligible, product, subscriber) -> None:
    claim = vendor_notified(product, subscriber)
    ReleaseClaim.objects.filter(pk=claim.pk).update(
        contest_deadline=timezone.now() - timedelta(minutes=1)
    )
    claim.refresh_from_db()
    before = unchanged(claim)
    page = Client().post(vendor_claim_link(claim=claim), {"statement": "We are solvent."})
    assert page.status_code == 404  # the vendor's link expired with the contest deadline
    with pytest.raises(ValidationError, match="contest period of this claim has ended"):
        claim_contest_by_vendor(claim=claim, statement="We are solvent.")
    assert unchanged(claim) == before
    claim.refresh_from_db()
    assert (claim.state, claim.vendor_statement) == ("vendor_notified", "")


def token_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[1]


@pytest.mark.parametrize("tamper", ["altered", "forged", "another claim's payload"])
def test_a_forged_or_altered_vendor_link_is_not_found(
    tamper, eligible, product, subscriber, staff
) -> None:
    claim = vendor_notified(product, subscriber)
    other = vendor_notified(product, another_subscriber(product, staff, 2))
    token = token_of(vendor_claim_link(claim=claim))
    if tamper == "altered":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif tamper == "forged":
        token = signing.dumps({"claim": claim.pk}, salt="escrow.vendor-claim", key="x" * 50)
    else:
        other_payload = token_of(vendor_claim_link(claim=other)).split(":", 1)[0]
        token = other_payload + ":" + token.split(":", 1)[1]
    before = unchanged(claim), unchanged(other)
    client = Client()
    assert client.get(f"/vendor/claims/{token}/").status_code == 404
    posted = client.post(f"/vendor/claims/{token}/", {"statement": "We are solvent."})
    assert posted.status_code == 404
    assert (unchanged(claim), unchanged(other)) == before


def test_a_contest_without_a_statement_is_refused(eligible, product, subscriber) -> None:
    claim = vendor_notified(product, subscriber)
    before = unchanged(claim)
    page = Client().post(vendor_claim_link(claim=claim), {"statement": "   "})
    assert page.status_code == 200
    assert "This field is required." in page.content.decode()
    with pytest.raises(ValidationError, match="A contest needs a statement"):
        claim_contest_by_vendor(claim=claim, statement=" \n ")
    assert unchanged(claim) == before


def test_a_customer_cannot_claim_a_voluntary_release(eligible, product, subscriber) -> None:
    # A voluntary release is the vendor's act: tests/escrow/test_voluntary_release.py.
    with pytest.raises(ValidationError, match="vendor's own act"):
        make_claim(product=product, filed_by=subscriber, condition="voluntary")
    assert not ReleaseClaim.objects.exists()


# --- 6. the contest period ends ---------------------------------------------------


def test_elapsed_contest_periods_move_each_claim_exactly_once(
    eligible, product, subscriber, staff
) -> None:
    due = [
        vendor_notified(product, user)
        for user in (subscriber, another_subscriber(product, staff, 2))
    ]
    waiting = vendor_notified(product, another_subscriber(product, staff, 3))
    now = timezone.now()
    ReleaseClaim.objects.filter(pk__in=[c.pk for c in due]).update(
        contest_deadline=now - timedelta(hours=1)
    )
    waiting_before = snapshot(waiting)[0]

    first = claims_contest_elapsed(now=now)
    again = claims_contest_elapsed(now=now)
    late = claims_contest_elapsed(now=now + timedelta(days=1))

    assert sorted(c.pk for c in first) == sorted(c.pk for c in due)
    assert (again, late) == ([], [])
    for claim in due:
        claim.refresh_from_db()
        assert claim.state == "under_review"
        entries = AuditEntry.objects.filter(object_id=str(claim.pk))
        assert entries.filter(action="releaseclaim.mark_uncontested").count() == 1
        assert entries.filter(action="releaseclaim.start_review").count() == 1
    assert snapshot(waiting)[0] == waiting_before
    assert not AuditEntry.objects.filter(
        object_id=str(waiting.pk), action="releaseclaim.mark_uncontested"
    ).exists()


# --- released claims --------------------------------------------------------------


@pytest.fixture
def released(sealed_archive, product, subscriber, notary, notary_identity, claimant_identity):
    claim = under_review(product, subscriber)
    release = release_approve(
        claim=claim, notary=notary, reasons=REASONS, identities=[notary_identity]
    )
    claim.refresh_from_db()
    assert claim.state == "released"
    return claim, release


def test_the_released_file_opens_with_the_claimants_key(
    released, sealed_archive, subscriber, claimant_identity
) -> None:
    claim, _ = released
    link = signed_in_client(subscriber).get(f"/portal/claims/{claim.pk}/download/")
    assert link.status_code == 302
    response = Client().get(link["Location"])
    assert response.status_code == 200
    assert decrypted(streamed(response), claimant_identity) == sealed_archive


# --- 7. download links ------------------------------------------------------------


def test_a_release_link_used_after_it_expired_is_not_found(
    released, subscriber, monkeypatch
) -> None:
    _, release = released
    link = release_link(release=release, user=subscriber)
    assert streamed(Client().get(link))  # it works while fresh
    downloads = AuditEntry.objects.filter(action="release.download").count()
    an_hour_later(monkeypatch)
    assert Client().get(link).status_code == 404
    assert AuditEntry.objects.filter(action="release.download").count() == downloads


def test_a_release_link_of_a_deactivated_user_is_not_found(released, subscriber) -> None:
    _, release = released
    link = release_link(release=release, user=subscriber)
    assert streamed(Client().get(link))  # it works while the user is active
    User.objects.filter(pk=subscriber.pk).update(is_active=False)
    assert Client().get(link).status_code == 404


def test_a_release_link_made_for_a_user_of_another_organisation_is_not_found(
    released, other_customer
) -> None:
    _, release = released
    assert Client().get(release_link(release=release, user=other_customer)).status_code == 404
    assert not AuditEntry.objects.filter(action="release.download").exists()


def test_another_organisation_cannot_ask_for_the_download(released, other_customer) -> None:
    claim, _ = released
    client = signed_in_client(other_customer)
    assert client.get(f"/portal/claims/{claim.pk}/download/").status_code == 404
    assert client.get(f"/portal/claims/{claim.pk}/").status_code == 404


def test_an_evidence_link_used_after_it_expired_is_not_found(
    eligible, product, subscriber, monkeypatch
) -> None:
    claim = file_with(product, subscriber, [Upload("ruling.pdf", PDF)])
    link = evidence_link(evidence=claim.evidence.get(), viewer="vendor")
    assert Client().get(link).status_code == 200  # it works while fresh
    views = AuditEntry.objects.filter(action="evidence.view").count()
    an_hour_later(monkeypatch)
    assert Client().get(link).status_code == 404
    assert AuditEntry.objects.filter(action="evidence.view").count() == views


# --- 8. a passphrase release ------------------------------------------------------


def test_a_passphrase_release_keeps_no_secret_and_opens_with_the_customers_passphrase(
    fast_scrypt, sealed_archive, product, subscriber, notary, notary_identity
) -> None:
    passphrase = "correct horse battery staple 42"
    release_key_set(actor=subscriber, method="passphrase", passphrase=passphrase)
    claim = under_review(product, subscriber)
    release = release_approve(
        claim=claim, notary=notary, reasons=REASONS, identities=[notary_identity]
    )
    found = [table for table, text in every_row_as_text() if passphrase in text]
    assert found == []  # not in the database, in any table
    client = signed_in_client(subscriber)
    page = client.get(f"/portal/claims/{claim.pk}/").content.decode()
    assert passphrase not in page
    assert "release-key.age" in page

    armored = client.get("/portal/release-key/release-key.age")
    assert "no-store" in armored["Cache-Control"]
    key_file = io.BytesIO()
    age.decrypt(io.BytesIO(armored.content), key_file, [age.ScryptIdentity(passphrase)])
    identities = age.parse_identity_file(key_file.getvalue().decode())
    link = client.get(f"/portal/claims/{claim.pk}/download/")
    sealed = streamed(Client().get(link["Location"]))
    assert decrypted(sealed, identities[0]) == sealed_archive
    assert release.recipient == identities[0].recipient().to_string()


# --- 9. one decision only ---------------------------------------------------------


def test_a_released_claim_cannot_then_be_rejected(released, notary) -> None:
    claim, _ = released
    before = unchanged(claim)
    with pytest.raises(TransitionRefused, match=r"(?i)released.*only possible from"):
        claim_reject(claim=claim, notary=notary, reasons="On second thoughts, no.")
    assert unchanged(claim) == before


def test_a_rejected_claim_cannot_then_be_approved(
    sealed_archive, product, subscriber, notary, notary_identity, claimant_identity
) -> None:
    claim = under_review(product, subscriber)
    claim_reject(claim=claim, notary=notary, reasons="No evidence of insolvency.")
    before = unchanged(claim)
    with pytest.raises(TransitionRefused, match=r"(?i)rejected.*only a claim under review"):
        release_approve(claim=claim, notary=notary, reasons=REASONS, identities=[notary_identity])
    assert unchanged(claim) == before
    assert not ClaimRelease.objects.exists()


# --- 10. the notary's identity is never kept --------------------------------------


def every_row_as_text() -> Iterator[tuple[str, str]]:
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview | bytes):
                        value = bytes(value).decode("latin-1")
                    yield table, str(value)


@pytest.fixture
def task_calls() -> Iterator[list[tuple[str, Any, Any]]]:
    calls: list[tuple[str, Any, Any]] = []

    def record(sender=None, task=None, args=None, kwargs=None, **extra) -> None:
        calls.append((task.name if task else str(sender), args, kwargs))

    task_prerun.connect(record, weak=False)
    yield calls
    task_prerun.disconnect(record)


@pytest.fixture
def every_log(caplog) -> Iterator[Any]:
    """caplog at DEBUG for the root logger and every logger that does not propagate."""
    caplog.set_level(logging.DEBUG)
    detached = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in detached:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in detached:
        logger.removeHandler(caplog.handler)


def test_an_identity_pasted_to_approve_is_kept_nowhere(
    sealed_archive,
    product,
    subscriber,
    notary,
    notary_identity,
    claimant_identity,
    every_log,
    task_calls,
    django_capture_on_commit_callbacks,
) -> None:
    secret = notary_identity.to_string()
    claim = under_review(product, subscriber)
    client = signed_in_client(notary)
    with django_capture_on_commit_callbacks(execute=True):
        response = decide(client, claim, action="approve", reasons=REASONS, identity=secret)
    assert response.status_code == 302
    claim.refresh_from_db()
    assert claim.state == "released"

    needle = secret.lower()
    found = [table for table, text in every_row_as_text() if needle in text.lower()]
    assert found == []
    assert every_log.records, "no log records captured: the log check would prove nothing"
    assert needle not in every_log.text.lower()
    names = {name for name, _, _ in task_calls}
    assert "escrow.release_letter_render" in names
    assert needle not in repr(task_calls).lower()


def test_the_claim_pages_show_the_claims_history(eligible, product, subscriber, notary) -> None:
    claim = vendor_notified(product, subscriber)
    customer_page = signed_in_client(subscriber).get(f"/portal/claims/{claim.pk}/")
    notary_page = signed_in_client(notary).get(f"/notary/claims/{claim.pk}/")
    for page in (customer_page, notary_page):
        assert "The vendor was notified by e-mail on" in page.content.decode()
        assert "releaseclaim." not in page.content.decode()
