"""Changing the seal recipients in tests the way production does: proposed, then
approved by a notary with a fresh code from the notary's authenticator."""

from __future__ import annotations

import time

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from escrow.models import NotaryRecipient, SealRecipientChange
from escrow.services.seal_changes import seal_change_approve, seal_change_propose


def fresh_code(notary: User) -> str:
    """A code the notary's authenticator would show that django-otp has not accepted
    yet: the current one, or the next one when the current one was used."""
    device = TOTPDevice.objects.devices_for_user(notary, confirmed=True).get()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if device.last_t >= totp.t():
        totp.time += device.step * (device.last_t + 1 - totp.t())
    return f"{totp.token():0{device.digits}d}"


def approved_break_glass(*, public_key: str, staff: User, notary: User) -> NotaryRecipient:
    change = seal_change_propose(
        kind=SealRecipientChange.Kind.ADD_BREAK_GLASS_KEY,
        actor=staff,
        public_key=public_key,
        label="physical safe",
        reason="the offline key for the safe",
    )
    change = seal_change_approve(change=change, notary=notary, token=fresh_code(notary))
    assert change.recipient is not None
    return change.recipient
