"""Deposit certificates: who may see one, what the PDF says, and that each state of a
deposit gets its certificate rendered and stored once."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django_otp.middleware import OTPMiddleware
from pypdf import PdfReader

from accounts.models import User
from billing.services import subscription_cancel
from escrow.certificates import (
    certificate_document_render,
    certificate_pdf_render,
    may_see_certificate,
)
from escrow.models import Deposit
from escrow.services.deposits import deposit_acknowledge
from records.models import StoredFile
from records.services.files import stored_file_open
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import make_active_subscription, make_deposit
from vault.keys import system_signing_key
from vault.manifest import public_key_text


def pdf_text(data: bytes) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


def as_request_user(user: User, *, second_factor: bool = True) -> object:
    """``request.user`` as the views see it: signed in, through the OTP middleware."""
    request = RequestFactory().get("/")
    request.session = signed_in_client(user, second_factor=second_factor).session
    AuthenticationMiddleware(lambda r: None).process_request(request)
    return OTPMiddleware(lambda r: r.user)(request)


@pytest.fixture
def deposit(product, staff, notary_identity) -> Deposit:
    return deposit_through_pipeline(product=product, staff=staff, version="2.4.0")


# --- who may see a certificate ------------------------------------------------------


def test_staff_may_see_any_certificate(product, staff) -> None:
    assert may_see_certificate(as_request_user(staff), make_deposit(product=product))


def test_a_customer_whose_subscription_covers_the_product_may_see_it(
    product, licence, subscriber, staff
) -> None:
    deposit = make_deposit(product=product)
    assert not may_see_certificate(as_request_user(subscriber), deposit)  # licence only
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    assert may_see_certificate(as_request_user(subscriber), deposit)


def test_a_customer_whose_subscription_ended_may_not(product, licence, subscriber, staff) -> None:
    deposit = make_deposit(product=product)
    subscription = make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    subscription_cancel(subscription=subscription, actor=subscriber)
    assert not may_see_certificate(as_request_user(subscriber), deposit)


def test_another_customer_may_not(product, licence, subscriber, other_customer, staff) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    assert not may_see_certificate(as_request_user(other_customer), make_deposit(product=product))


def test_a_notary_may_only_after_the_second_factor(product, notary) -> None:
    deposit = make_deposit(product=product)
    assert may_see_certificate(as_request_user(notary), deposit)
    assert not may_see_certificate(as_request_user(notary, second_factor=False), deposit)


def test_anonymous_and_deactivated_users_may_not(product, staff) -> None:
    deposit = make_deposit(product=product)
    assert not may_see_certificate(AnonymousUser(), deposit)
    User.objects.filter(pk=staff.pk).update(is_active=False)
    staff.refresh_from_db()
    assert not may_see_certificate(staff, deposit)


# --- the certificate ----------------------------------------------------------------


def test_the_certificate_says_what_is_kept_and_where(deposit) -> None:
    data = certificate_pdf_render(deposit=deposit)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    squeezed = text.replace(" ", "")
    assert "Deposit certificate" in text
    assert "Ledger Pro (ledger-pro)" in text
    assert "2.4.0" in text
    assert "Acme Software B.V." in text
    assert deposit.archive_sha256 in squeezed
    assert deposit.ciphertext_sha256 in squeezed
    assert "primary" in text and "replica" in text
    assert "Not acknowledged by the notary yet." in text
    assert public_key_text(system_signing_key()).replace(" ", "") in squeezed


def test_an_acknowledged_certificate_names_the_notary(deposit, notary) -> None:
    acknowledged = deposit_acknowledge(deposit=deposit, notary=notary)
    text = pdf_text(certificate_pdf_render(deposit=acknowledged))
    assert "Not acknowledged" not in text
    assert notary.full_name in text
    assert acknowledged.acknowledgement.signature[:20] in text.replace(" ", "")


def test_the_certificate_of_a_state_is_stored_once_and_given_back(deposit, monkeypatch) -> None:
    data = certificate_document_render(deposit=deposit)
    stored = StoredFile.objects.get(purpose=StoredFile.Purpose.CERTIFICATE)
    assert stored.key == f"certificates/ledger-pro/{deposit.pk}/{deposit.state}.pdf"
    assert stored.filename == "deposit-ledger-pro-2.4.0.pdf"
    with stored_file_open(stored) as stream:
        assert stream.read() == data
    assert "2.4.0" in pdf_text(data)

    def no_second_rendering(**kwargs: object) -> bytes:
        raise AssertionError("the certificate of this state was rendered again")

    monkeypatch.setattr("escrow.certificates.certificate_pdf_render", no_second_rendering)
    assert certificate_document_render(deposit=deposit) == data
    assert StoredFile.objects.filter(purpose=StoredFile.Purpose.CERTIFICATE).count() == 1


def test_a_later_state_gets_a_new_certificate(deposit, notary) -> None:
    first_state = deposit.state
    before = certificate_document_render(deposit=deposit)
    acknowledged = deposit_acknowledge(deposit=deposit, notary=notary)
    after = certificate_document_render(deposit=acknowledged)
    assert before != after
    assert "Not acknowledged by the notary yet." in pdf_text(before)
    assert notary.full_name in pdf_text(after)
    keys = set(
        StoredFile.objects.filter(purpose=StoredFile.Purpose.CERTIFICATE).values_list(
            "key", flat=True
        )
    )
    assert keys == {
        f"certificates/ledger-pro/{deposit.pk}/{first_state}.pdf",
        f"certificates/ledger-pro/{deposit.pk}/acknowledged.pdf",
    }
