from __future__ import annotations

import io

import pytest
from django.core import signing
from django.test import Client
from pypdf import PdfReader

from billing.services import subscription_activate, subscription_await_payment
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import make_subscription
from tests.transparency.witnessing import cosign_form


def pdf_text(data: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def deposit(product, staff, notary_identity):
    return deposit_through_pipeline(product=product, staff=staff)


@pytest.fixture
def covered_subscriber(subscriber, licence, staff):
    subscription = make_subscription(licence=licence, actor=subscriber)
    subscription_await_payment(subscription=subscription, actor=subscriber)
    subscription_activate(subscription=subscription, actor=staff)
    return subscriber


def download(client: Client, deposit) -> tuple[str, bytes]:
    link = client.get(f"/deposits/{deposit.pk}/certificate/")
    assert link.status_code == 302
    location = link["Location"]
    assert location.startswith("/files/certificate/")
    response = Client().get(location)  # the link alone suffices, like a presigned URL
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    return location, response.content


def test_a_covered_customer_downloads_a_certificate_that_says_what_is_kept(
    deposit, covered_subscriber
) -> None:
    _, pdf = download(signed_in_client(covered_subscriber), deposit)
    text = pdf_text(pdf)
    assert "Deposit certificate" in text
    assert "Ledger Pro" in text and "1.0.0" in text
    assert deposit.archive_sha256[:32] in text.replace("\n", "")
    assert deposit.ciphertext_sha256[:32] in text.replace("\n", "")
    assert "primary" in text and "replica" in text
    assert "Not acknowledged by the notary yet." in text
    assert AuditEntry.objects.filter(
        action="deposit.certificate_download", actor=covered_subscriber
    ).exists()


def test_a_customer_whose_subscription_is_not_active_is_refused(deposit, subscriber) -> None:
    assert (
        signed_in_client(subscriber).get(f"/deposits/{deposit.pk}/certificate/").status_code == 404
    )


def test_the_link_expires_within_the_hour(deposit, staff, settings) -> None:
    location, _ = download(signed_in_client(staff), deposit)
    settings.ESCROW_LINK_SECONDS = 0
    assert Client().get(location).status_code == 404


def test_a_forged_or_altered_link_is_refused(deposit, staff) -> None:
    forged = signing.dumps({"deposit": deposit.pk, "user": staff.pk}, salt="another purpose")
    assert Client().get(f"/files/certificate/{forged}/").status_code == 404
    location, _ = download(signed_in_client(staff), deposit)
    tampered = location[:-3] + ("A" if location[-3] != "A" else "B") + location[-2:]
    assert Client().get(tampered).status_code == 404
    assert Client().get("/files/certificate/not-a-token/").status_code == 404


def test_a_link_stops_working_when_its_user_loses_access(deposit, covered_subscriber) -> None:
    location, _ = download(signed_in_client(covered_subscriber), deposit)
    covered_subscriber.is_active = False
    covered_subscriber.save(update_fields=["is_active"])
    assert Client().get(location).status_code == 404


def test_the_certificate_shows_the_acknowledgement(deposit, notary, staff) -> None:
    signed_in_client(notary).post(
        f"/notary/deposits/{deposit.pk}/acknowledge/", cosign_form(notary)
    )
    _, pdf = download(signed_in_client(staff), deposit)
    text = pdf_text(pdf)
    assert notary.full_name in text
    assert "Not acknowledged" not in text


def test_the_certificate_is_kept_in_every_storage_site(
    deposit, staff, settings, django_capture_on_commit_callbacks
) -> None:
    from pathlib import Path

    from records.models import StoredFile

    with django_capture_on_commit_callbacks(execute=True):
        _, pdf = download(signed_in_client(staff), deposit)
    stored = StoredFile.objects.get(purpose="certificate")
    for site in settings.ESCROW_SITES:
        assert (Path(site["path"]) / stored.key).read_bytes() == pdf
    # The same state serves the same stored document again.
    _, again = download(signed_in_client(staff), deposit)
    assert again == pdf
    assert StoredFile.objects.filter(purpose="certificate").count() == 1
