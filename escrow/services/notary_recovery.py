"""A notary who lost the authenticator or the password is recovered by another notary.

Staff cannot do it (they cannot touch a notary in the admin at all), and no
mailbox can (password resets are not sent to notaries). The helping notary
confirms with a fresh code from their own authenticator; every step is audited.
With a single notary there is nobody to help: operators keep at least two."""

from __future__ import annotations

import secrets

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role, User
from escrow.services.seal_changes import check_fresh_code
from records.services.audit import audit_record


def _check(helper: User, colleague: User, token: str) -> None:
    if helper.role != Role.NOTARY or not helper.is_active:
        raise PermissionDenied("Only a notary recovers another notary.")
    if colleague.role != Role.NOTARY or colleague.pk == helper.pk:
        raise PermissionDenied("A notary recovers another notary, never themselves.")
    check_fresh_code(helper, token)


def notary_authenticator_reset(*, helper: User, colleague: User, token: str) -> None:
    """Remove the colleague's authenticators: at the next sign-in with the password,
    the colleague enrols a new one."""
    _check(helper, colleague, token)
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=colleague).delete()[0]
        audit_record(
            action="notary.authenticator_reset",
            actor=helper,
            target=colleague,
            details={"devices_removed": removed},
        )


def notary_password_reset(*, helper: User, colleague: User, token: str) -> str:
    """Give the colleague a new one-time password, returned once for the helping
    notary to hand over in person; it is not stored anywhere but as a hash."""
    _check(helper, colleague, token)
    password = secrets.token_urlsafe(15)
    with transaction.atomic():
        colleague.set_password(password)
        colleague.save(update_fields=["password"])
        audit_record(action="notary.password_reset", actor=helper, target=colleague)
    return password
