"""The whole path, filed to opened, through the HTTP views, with the real age tool."""

from __future__ import annotations

import io
import re
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django.test import Client
from pypdf import PdfReader

from escrow.models import ClaimRelease, ReleaseClaim
from escrow.services.deposits import deposit_acknowledge
from escrow.services.release_keys import release_key_set
from escrow.services.releases import ApprovalRefused, release_approve
from records.services.transitions import TransitionRefused
from tests import archives
from tests.conftest import signed_in_client, skip_or_fail
from tests.deposits import deposit_through_pipeline
from tests.factories import make_active_subscription

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def escrowed(product, licence, subscriber, staff, notary, notary_identity):
    """Org A subscribes; a real deposit is sealed, replicated and acknowledged."""
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    deposit = deposit_through_pipeline(product=product, staff=staff)
    deposit_acknowledge(deposit=deposit, notary=notary)
    return deposit


def keygen(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "release-key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = re.search(r"public key: (age1\w+)", key.read_text())
    assert public is not None
    return key, public.group(1)


def test_filed_contested_reviewed_approved_downloaded_and_opened(
    escrowed,
    subscriber,
    notary,
    notary_identity,
    tmp_path,
    mailoutbox,
    django_capture_on_commit_callbacks,
) -> None:
    customer = signed_in_client(subscriber)
    key_file, recipient = keygen(tmp_path)
    customer.post("/portal/release-key/", {"method": "recipient", "recipient": recipient})

    # 1. The claimant files, with evidence.
    with django_capture_on_commit_callbacks(execute=True):
        filed = customer.post(
            "/portal/claims/",
            {
                "product": escrowed.product.pk,
                "condition": "insolvency",
                "statement": "Acme Software B.V. was declared bankrupt on 2 November.",
                "documents": [SimpleUploadedFile("ruling.pdf", PDF)],
            },
        )
    claim = ReleaseClaim.objects.get()
    assert filed["Location"] == f"/portal/claims/{claim.pk}/"
    assert claim.state == "vendor_notified"
    assert claim.contest_deadline is not None

    # 2. The vendor reads it through the link in its e-mail and contests.
    vendor_mail = next(m for m in mailoutbox if "Release claim for" in m.subject)
    link = re.search(r"(/vendor/claims/[^/\s]+/)", vendor_mail.body)
    assert link is not None
    vendor = Client()
    page = vendor.get(link.group(1)).content.decode()
    assert "bankrupt on 2 November" in page
    evidence = claim.evidence.get()
    shown = vendor.get(f"{link.group(1)}evidence/{evidence.pk}/", follow=True)
    assert shown.content == PDF
    vendor.post(
        link.group(1),
        {
            "statement": "We are solvent: see the enclosed ruling.",
            "documents": [SimpleUploadedFile("solvency.pdf", PDF + b"%vendor\n")],
        },
    )
    claim.refresh_from_db()
    assert (claim.state, claim.vendor_statement) == (
        "under_review",
        "We are solvent: see the enclosed ruling.",
    )

    # 3. The notary asks for more evidence; the claimant adds it.
    notary_client = signed_in_client(notary)
    review = notary_client.get(f"/notary/claims/{claim.pk}/").content.decode()
    assert "We are solvent" in review and escrowed.version in review
    notary_client.post(
        f"/notary/claims/{claim.pk}/decide/",
        {"action": "request_evidence", "reasons": "Please add the court ruling itself."},
    )
    claim.refresh_from_db()
    assert claim.state == "evidence_requested"
    customer.post(
        f"/portal/claims/{claim.pk}/evidence/",
        {"documents": [SimpleUploadedFile("ruling-2.pdf", PDF + b"%ruling\n")]},
    )
    claim.refresh_from_db()
    assert claim.state == "under_review"
    assert claim.evidence.count() == 3

    # 4. The notary approves with its identity, pasted for this request only.
    with django_capture_on_commit_callbacks(execute=True):
        decided = notary_client.post(
            f"/notary/claims/{claim.pk}/decide/",
            {
                "action": "approve",
                "reasons": "The ruling of 2 November proves insolvency.",
                "identity": notary_identity.to_string(),
            },
        )
    assert decided.status_code == 302
    claim.refresh_from_db()
    assert claim.state == "released"

    # 5. The claimant downloads through an hour-long link and opens it with age.
    page = customer.get(f"/portal/claims/{claim.pk}/").content.decode()
    assert "Download the released file" in page
    link = customer.get(f"/portal/claims/{claim.pk}/download/")
    assert link["Location"].startswith("/files/release/")
    released = b"".join(Client().get(link["Location"]).streaming_content)
    released_file = tmp_path / "released.age"
    released_file.write_bytes(released)
    opened = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(released_file)], check=True, capture_output=True
    ).stdout
    assert opened == archives.tar_gz()
    release = ClaimRelease.objects.get()
    assert len(released) == release.released_size

    letter = customer.get(f"/portal/claims/{claim.pk}/letter/")
    pdf = b"".join(Client().get(letter["Location"]).streaming_content)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "own use only" in text
    assert escrowed.manifest_sha256[:20] in text.replace("\n", "")


def test_the_payload_of_the_released_file_is_the_stored_one(
    escrowed, subscriber, notary, notary_identity, settings, tmp_path
) -> None:
    _, recipient = keygen(tmp_path)
    release_key_set(actor=subscriber, method="recipient", recipient=recipient)
    claim = _claim_under_review(escrowed, subscriber)
    release = release_approve(
        claim=claim, notary=notary, reasons="Proven.", identities=[notary_identity]
    )
    sealed = (Path(settings.ESCROW_SITES[0]["path"]) / escrowed.object_key("sealed")).read_bytes()
    header = (Path(settings.ESCROW_SITES[0]["path"]) / release.header_key).read_bytes()
    assert release.released_size == len(header) + len(sealed) - release.payload_offset
    assert header != sealed[: release.payload_offset]  # a new header, no new payload


def _claim_under_review(deposit, subscriber) -> ReleaseClaim:
    from escrow.services.claims import (
        claim_file,
        claim_mark_uncontested,
        claim_notify_vendor,
        claim_start_review,
    )
    from escrow.services.evidence import Upload

    claim = claim_file(
        product=deposit.product,
        filed_by=subscriber,
        condition="insolvency",
        statement="Bankrupt.",
        uploads=[Upload("ruling.pdf", PDF)],
    )
    claim.refresh_from_db()  # outside a transaction, the vendor was notified on commit
    if claim.state == "filed":
        claim_notify_vendor(claim=claim)
    claim_mark_uncontested(claim=claim)
    return claim_start_review(claim=claim, actor=None)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_racing_decisions_release_once(
    product, licence, subscriber, staff, notary, notary_identity, tmp_path
) -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("racing decisions are tested against PostgreSQL")
    from django.test import TestCase

    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    deposit = deposit_through_pipeline(product=product, staff=staff)
    deposit_acknowledge(deposit=deposit, notary=notary)
    release_key_set(actor=subscriber, method="recipient", recipient=keygen(tmp_path)[1])
    claim = _claim_under_review(deposit, subscriber)
    outcomes: list[str] = []

    def decide(approve: bool) -> None:
        try:
            start.wait()
            with TestCase.captureOnCommitCallbacks(execute=True):
                fresh = ReleaseClaim.objects.get(pk=claim.pk)
                if approve:
                    release_approve(
                        claim=fresh, notary=notary, reasons="Proven.", identities=[notary_identity]
                    )
                else:
                    from escrow.services.claims import claim_reject

                    claim_reject(claim=fresh, notary=notary, reasons="Not proven.")
            outcomes.append("decided")
        except (TransitionRefused, ApprovalRefused) as refused:
            outcomes.append(f"refused: {refused}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=decide, args=(flag,)) for flag in (True, True, False)]
    start = threading.Barrier(len(threads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("decided") == 1, outcomes
    assert len(outcomes) == 3
    claim.refresh_from_db()
    assert claim.state in {"released", "rejected"}
    assert ClaimRelease.objects.count() == (1 if claim.state == "released" else 0)


def test_the_notary_exports_a_safe_that_opens_without_this_software(
    escrowed, notary, notary_identity, tmp_path
) -> None:
    response = signed_in_client(notary).get("/notary/safe-export/")
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    folder = tmp_path / "safe"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    base = f"{escrowed.product.slug}/{escrowed.version}"
    assert {
        "README.txt",
        "SHA256SUMS",
        f"{base}/sealed.age",
        f"{base}/manifest.json",
        f"{base}/manifest.sig",
    } <= {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, check=True, capture_output=True)
    key = tmp_path / "notary.key"
    key.write_text(notary_identity.to_string() + "\n")
    opened = subprocess.run(
        ["age", "-d", "-i", str(key), str(folder / base / "sealed.age")],
        check=True,
        capture_output=True,
    ).stdout
    assert opened == archives.tar_gz()
    assert "age -d -i" in (folder / "README.txt").read_text()
