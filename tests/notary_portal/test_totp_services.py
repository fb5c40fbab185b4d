"""The notary's second factor as services: enrolment only without a confirmed authenticator,
confirmation with a first right code, verification, and an audit entry for every attempt."""

from __future__ import annotations

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role, User
from notary_portal.services import (
    DEVICE_NAME,
    totp_confirm_enrolment,
    totp_device_for_enrolment,
    totp_has_confirmed_device,
    totp_verify,
)
from records.models import AuditEntry
from tests.factories import UserFactory


def code_at(device: TOTPDevice, drift: int = 0) -> str:
    """The device's code ``drift`` steps from now."""
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift)
    return f"{code:06d}"


def current_code(device: TOTPDevice) -> str:
    return code_at(device)


def near_codes(device: TOTPDevice) -> set[str]:
    """Every code the device accepts around now (its tolerance, and a step to spare)."""
    reach = device.tolerance + 1
    return {
        code_at(device, drift) for drift in range(device.drift - reach, device.drift + reach + 1)
    }


def wrong_code(device: TOTPDevice) -> str:
    """A well-formed code the device does not accept now."""
    near = near_codes(device)
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in near)


def audited(action: str, notary: User) -> int:
    return AuditEntry.objects.filter(action=action, actor=notary, object_id=str(notary.pk)).count()


@pytest.fixture
def newcomer(db: None) -> User:
    return UserFactory(email="new@notaris.example", role=Role.NOTARY, organisation=None)


# --- totp_has_confirmed_device ------------------------------------------------------


def test_only_a_confirmed_device_counts(notary, newcomer) -> None:
    assert totp_has_confirmed_device(notary=notary)
    assert not totp_has_confirmed_device(notary=newcomer)
    TOTPDevice.objects.create(user=newcomer, name="half-done", confirmed=False)
    assert not totp_has_confirmed_device(notary=newcomer)


# --- totp_device_for_enrolment ------------------------------------------------------


def test_a_notary_without_an_authenticator_gets_one_unconfirmed_device(newcomer) -> None:
    device = totp_device_for_enrolment(notary=newcomer)
    assert (device.user_id, device.name, device.confirmed) == (newcomer.pk, DEVICE_NAME, False)
    # Reloading the enrolment page shows the same secret, not a new one.
    again = totp_device_for_enrolment(notary=newcomer)
    assert (again.pk, again.key) == (device.pk, device.key)
    assert TOTPDevice.objects.filter(user=newcomer).count() == 1


def test_a_notary_with_a_confirmed_authenticator_cannot_add_another(notary) -> None:
    with pytest.raises(ValueError, match="already has a confirmed authenticator"):
        totp_device_for_enrolment(notary=notary)
    assert TOTPDevice.objects.filter(user=notary).count() == 1


@pytest.mark.parametrize("role", [Role.STAFF, Role.CUSTOMER])
def test_only_notaries_enrol_here(role, organisation_a) -> None:
    user = UserFactory(role=role, organisation=organisation_a if role == Role.CUSTOMER else None)
    with pytest.raises(ValueError, match="Only notaries"):
        totp_device_for_enrolment(notary=user)
    assert not TOTPDevice.objects.filter(user=user).exists()


# --- totp_confirm_enrolment ---------------------------------------------------------


def test_a_wrong_first_code_confirms_nothing_and_is_audited(newcomer) -> None:
    device = totp_device_for_enrolment(notary=newcomer)
    assert totp_confirm_enrolment(notary=newcomer, token=wrong_code(device)) is None
    device.refresh_from_db()
    assert not device.confirmed
    assert not totp_has_confirmed_device(notary=newcomer)
    assert audited("notary.totp_enrolment_failed", newcomer) == 1
    assert audited("notary.totp_enrolled", newcomer) == 0


def test_the_right_first_code_confirms_the_device_and_ends_enrolment(newcomer) -> None:
    device = totp_device_for_enrolment(notary=newcomer)
    confirmed = totp_confirm_enrolment(notary=newcomer, token=current_code(device))
    assert confirmed is not None and confirmed.pk == device.pk
    device.refresh_from_db()
    assert device.confirmed
    assert totp_has_confirmed_device(notary=newcomer)
    assert audited("notary.totp_enrolled", newcomer) == 1
    with pytest.raises(ValueError, match="already has a confirmed authenticator"):
        totp_confirm_enrolment(notary=newcomer, token=current_code(device))


# --- totp_verify --------------------------------------------------------------------


def test_the_right_code_passes_and_is_audited(notary) -> None:
    device = TOTPDevice.objects.get(user=notary)
    passed = totp_verify(notary=notary, token=current_code(device))
    assert passed is not None and passed.pk == device.pk
    assert audited("notary.second_factor_passed", notary) == 1
    assert audited("notary.second_factor_failed", notary) == 0


@pytest.mark.parametrize("token", ["wrong", "", "12345", "abcdef", "' OR 1=1"])
def test_a_wrong_code_fails_and_is_audited(notary, token) -> None:
    device = TOTPDevice.objects.get(user=notary)
    token = wrong_code(device) if token == "wrong" else token
    assert totp_verify(notary=notary, token=token) is None
    assert audited("notary.second_factor_failed", notary) == 1
    assert audited("notary.second_factor_passed", notary) == 0


def test_a_code_is_not_accepted_twice(notary) -> None:
    device = TOTPDevice.objects.get(user=notary)
    code = current_code(device)
    assert totp_verify(notary=notary, token=code) is not None
    assert totp_verify(notary=notary, token=code) is None
    assert audited("notary.second_factor_failed", notary) == 1


def test_the_code_of_an_unconfirmed_device_does_not_pass(newcomer) -> None:
    device = totp_device_for_enrolment(notary=newcomer)
    assert totp_verify(notary=newcomer, token=current_code(device)) is None
    assert audited("notary.second_factor_failed", newcomer) == 1


def test_another_notarys_code_does_not_pass(notary, newcomer) -> None:
    theirs = TOTPDevice.objects.create(user=newcomer, name="phone", confirmed=True)
    mine = TOTPDevice.objects.get(user=notary)
    code = current_code(theirs)
    if code in near_codes(mine):  # a few in a million; keep the test honest
        code = wrong_code(mine)
    assert totp_verify(notary=notary, token=code) is None
