"""Signed link tokens: a link opens what it was made for, and nothing once it is forged,
of another kind, expired, or its user is gone."""

from __future__ import annotations

import time

import pytest
from django.core import signing
from django.urls import resolve

from accounts.models import User
from records.links import (
    STORED_FILE_SALT,
    link_claims,
    link_token,
    signed_claims,
    signed_value,
    stored_file_from_link,
    stored_file_link,
)
from records.models import StoredFile
from records.services.files import stored_file_put


def token_of(path: str) -> str:
    return resolve(path).kwargs["token"]


def tampered(token: str) -> str:
    """The token with the last character of its signature changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.fixture
def stored(db: None) -> StoredFile:
    return stored_file_put(
        key="exports/links-test.zip",
        source=b"PK\x03\x04 a customer's export",
        purpose=StoredFile.Purpose.EXPORT,
        content_type="application/zip",
        filename="export.zip",
    )


# --- signed_value / signed_claims ---------------------------------------------------


def test_signed_claims_give_back_what_was_signed() -> None:
    token = signed_value(salt="test.kind", claim=7, viewer="notary")
    assert signed_claims(token, salt="test.kind") == {"claim": 7, "viewer": "notary"}


def test_a_tampered_signed_value_opens_nothing() -> None:
    token = signed_value(salt="test.kind", claim=7)
    assert signed_claims(tampered(token), salt="test.kind") is None


def test_a_value_signed_with_another_key_opens_nothing() -> None:
    forged = signing.dumps({"claim": 7}, salt="test.kind", key="x" * 50)
    assert signed_claims(forged, salt="test.kind") is None


def test_a_signed_value_of_another_kind_opens_nothing() -> None:
    token = signed_value(salt="test.kind", claim=7)
    assert signed_claims(token, salt="test.other-kind") is None


def test_a_validly_signed_value_that_is_not_a_mapping_is_refused() -> None:
    token = signing.dumps([7, "notary"], salt="test.kind")
    assert signed_claims(token, salt="test.kind") is None


# --- link_token / link_claims -------------------------------------------------------


def test_a_fresh_link_token_gives_its_claims_and_the_time_it_has_left(settings) -> None:
    settings.ESCROW_LINK_SECONDS = 600
    token = link_token(salt="test.kind", file=3, user=9)
    found = link_claims(token, salt="test.kind")
    assert found is not None
    claims, remaining = found
    assert (claims["file"], claims["user"]) == (3, 9)
    assert 595 <= remaining <= 600


def test_a_link_token_expires_after_the_link_lifetime(settings, monkeypatch) -> None:
    settings.ESCROW_LINK_SECONDS = 600
    token = link_token(salt="test.kind", file=3)
    made = time.time()
    monkeypatch.setattr("records.links.time.time", lambda: made + 599)
    assert link_claims(token, salt="test.kind") is not None
    monkeypatch.setattr("records.links.time.time", lambda: made + 601)
    assert link_claims(token, salt="test.kind") is None


def test_a_link_outliving_a_lowered_lifetime_is_refused(settings) -> None:
    settings.ESCROW_LINK_SECONDS = 3600
    token = link_token(salt="test.kind", file=3)
    settings.ESCROW_LINK_SECONDS = 60
    assert link_claims(token, salt="test.kind") is None


def test_a_signed_value_without_an_expiry_is_no_link() -> None:
    # The bare signature (used for the vendor's claim link) carries no "exp".
    token = signed_value(salt="test.kind", file=3)
    assert link_claims(token, salt="test.kind") is None


def test_a_link_token_of_another_kind_or_tampered_opens_nothing() -> None:
    token = link_token(salt="test.kind", file=3)
    assert link_claims(token, salt="test.other-kind") is None
    assert link_claims(tampered(token), salt="test.kind") is None


# --- stored file links --------------------------------------------------------------


def test_a_stored_file_link_opens_its_file_for_its_user(stored, staff) -> None:
    path = stored_file_link(stored=stored, user=staff)
    assert path.startswith("/files/")
    found = stored_file_from_link(token_of(path))
    assert found is not None
    file, user, remaining = found
    assert (file.pk, file.key, user.pk) == (stored.pk, "exports/links-test.zip", staff.pk)
    assert 0 < remaining <= 3600


def test_a_forged_stored_file_link_opens_nothing(stored, staff) -> None:
    token = token_of(stored_file_link(stored=stored, user=staff))
    assert stored_file_from_link(tampered(token)) is None
    forged = signing.dumps(
        {"file": stored.pk, "user": staff.pk, "exp": int(time.time()) + 60},
        salt=STORED_FILE_SALT,
        key="y" * 50,
    )
    assert stored_file_from_link(forged) is None


def test_a_token_of_another_kind_of_link_opens_no_stored_file(stored, staff) -> None:
    token = link_token(salt="escrow.certificate-link", file=stored.pk, user=staff.pk)
    assert stored_file_from_link(token) is None


def test_an_expired_stored_file_link_opens_nothing(stored, staff, settings, monkeypatch) -> None:
    token = token_of(stored_file_link(stored=stored, user=staff))
    later = time.time() + settings.ESCROW_LINK_SECONDS + 1
    monkeypatch.setattr("records.links.time.time", lambda: later)
    assert stored_file_from_link(token) is None


def test_the_link_of_a_deactivated_user_opens_nothing(stored, staff) -> None:
    token = token_of(stored_file_link(stored=stored, user=staff))
    assert stored_file_from_link(token) is not None
    User.objects.filter(pk=staff.pk).update(is_active=False)
    assert stored_file_from_link(token) is None


def test_a_link_naming_a_file_that_does_not_exist_opens_nothing(stored, staff) -> None:
    token = link_token(salt=STORED_FILE_SALT, file=stored.pk + 1000, user=staff.pk)
    assert stored_file_from_link(token) is None
