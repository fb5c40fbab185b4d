"""The notary's second factor: TOTP enrolment and verification."""

from __future__ import annotations

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role, User
from records.services.audit import audit_record

DEVICE_NAME = "authenticator app"


def totp_has_confirmed_device(*, notary: User) -> bool:
    return TOTPDevice.objects.devices_for_user(notary, confirmed=True).exists()


def totp_device_for_enrolment(*, notary: User) -> TOTPDevice:
    """The unconfirmed device whose secret the enrolment page shows.

    Enrolment is only possible while the notary has no confirmed device: with a
    stolen password alone nobody can add a second authenticator. Another notary
    resets a lost one (escrow.services.notary_recovery); staff cannot."""
    if notary.role != Role.NOTARY:
        raise ValueError("Only notaries enrol a TOTP device here.")
    if totp_has_confirmed_device(notary=notary):
        raise ValueError("This notary already has a confirmed authenticator.")
    device = TOTPDevice.objects.devices_for_user(notary, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=notary, name=DEVICE_NAME, confirmed=False)
    return device


def totp_confirm_enrolment(*, notary: User, token: str) -> TOTPDevice | None:
    """Confirm the enrolment device with a first code; ``None`` when the code is wrong."""
    with transaction.atomic():
        device = totp_device_for_enrolment(notary=notary)
        if not device.verify_token(token):
            audit_record(action="notary.totp_enrolment_failed", actor=notary, target=notary)
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        audit_record(action="notary.totp_enrolled", actor=notary, target=notary)
    return device


def totp_verify(*, notary: User, token: str) -> TOTPDevice | None:
    """Check a code against the notary's confirmed devices; every attempt is audited."""
    with transaction.atomic():
        for device in TOTPDevice.objects.devices_for_user(notary, confirmed=True):
            if device.verify_token(token):
                audit_record(action="notary.second_factor_passed", actor=notary, target=notary)
                return device
        audit_record(action="notary.second_factor_failed", actor=notary, target=notary)
    return None
