"""A notary's lost authenticator or password is recovered by another notary, with a
fresh code from the helper's own authenticator; never by staff, never by e-mail."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role
from escrow.services.notary_recovery import notary_authenticator_reset, notary_password_reset
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import UserFactory
from tests.seal import fresh_code


@pytest.fixture
def colleague(db):
    user = UserFactory(email="second@notaris.example", role=Role.NOTARY, organisation=None)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


def test_another_notary_resets_a_lost_authenticator_through_the_portal(notary, colleague) -> None:
    portal = signed_in_client(notary)
    assert colleague.email in portal.get("/notary/colleagues/").content.decode()
    response = portal.post(
        f"/notary/colleagues/{colleague.pk}/recover/",
        {"action": "authenticator", "token": fresh_code(notary)},
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=colleague).exists()
    entry = AuditEntry.objects.get(action="notary.authenticator_reset")
    assert (entry.actor, entry.object_id) == (notary, str(colleague.pk))


def test_a_one_time_password_is_shown_once_and_only_its_hash_kept(notary, colleague) -> None:
    response = signed_in_client(notary).post(
        f"/notary/colleagues/{colleague.pk}/recover/",
        {"action": "password", "token": fresh_code(notary)},
    )
    assert response.status_code == 200
    password = response.context["password"]
    assert password in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    colleague.refresh_from_db()
    assert colleague.check_password(password)
    assert password not in colleague.password


def test_a_wrong_code_recovers_nothing(notary, colleague) -> None:
    response = signed_in_client(notary).post(
        f"/notary/colleagues/{colleague.pk}/recover/",
        {"action": "authenticator", "token": "000000"},
    )
    assert response.status_code == 400
    assert "wrong or was used already" in response.content.decode()
    assert TOTPDevice.objects.filter(user=colleague).exists()


def test_nobody_recovers_themselves_and_staff_cannot_recover_anyone(notary, staff) -> None:
    with pytest.raises(PermissionDenied):
        notary_authenticator_reset(helper=notary, colleague=notary, token=fresh_code(notary))
    with pytest.raises(PermissionDenied):
        notary_password_reset(helper=staff, colleague=notary, token="123456")
    assert signed_in_client(staff).get("/notary/colleagues/").status_code == 403
    assert TOTPDevice.objects.filter(user=notary).exists()


def test_the_only_notary_is_told_there_is_nobody_to_help(notary) -> None:
    page = signed_in_client(notary).get("/notary/colleagues/").content.decode()
    assert "You are the only notary" in page
