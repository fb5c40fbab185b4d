"""A customer organisation's release key: where a released deposit will be encrypted to."""

from __future__ import annotations

import io

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.models import Role, User
from escrow.models import ReleaseKey
from records.services.audit import audit_record
from vault import age

MIN_PASSPHRASE_LENGTH = 12


def _identity_under_passphrase(passphrase: str) -> tuple[str, str]:
    """A new key pair: (its public recipient, its identity encrypted under the passphrase)."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise ValidationError(
            {"passphrase": f"Use a passphrase of at least {MIN_PASSPHRASE_LENGTH} characters."}
        )
    identity = age.X25519Identity.generate()
    sealed = io.BytesIO()
    age.encrypt(
        io.BytesIO((identity.to_string() + "\n").encode()),
        sealed,
        [age.ScryptRecipient(passphrase, work_factor=settings.ESCROW_IDENTITY_SCRYPT_WORK_FACTOR)],
        armor=True,
    )
    return identity.recipient().to_string(), sealed.getvalue().decode()


def release_key_set(
    *, actor: User, method: str, recipient: str = "", passphrase: str = ""
) -> ReleaseKey:
    """Register (or replace) the actor's organisation's release key; audited.

    With a passphrase, the portal makes a key pair and keeps its identity only
    encrypted under that passphrase; the passphrase itself is not kept."""
    if actor.role != Role.CUSTOMER or actor.organisation is None:
        raise PermissionDenied("Only customer users set their organisation's release key.")
    encrypted_identity = ""
    if method == ReleaseKey.Method.RECIPIENT:
        recipient = recipient.strip()
        if not recipient:
            raise ValidationError({"recipient": "Give the age recipient (age1...) to release to."})
    else:
        recipient, encrypted_identity = _identity_under_passphrase(passphrase)
    key = ReleaseKey.objects.filter(organisation=actor.organisation).first() or ReleaseKey(
        organisation=actor.organisation
    )
    before = (key.method, key.recipient) if key.pk else ("", "")
    key.method, key.recipient, key.updated_by = method, recipient, actor
    key.encrypted_identity = encrypted_identity
    key.full_clean()
    with transaction.atomic():
        key.save()
        audit_record(
            action="release_key.set",
            actor=actor,
            target=key,
            details={"method": method, "recipient": recipient, "before": list(before)},
        )
    return key
