"""A customer organisation's release key: where a released deposit will be encrypted to."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.models import Role, User
from escrow.models import ReleaseKey
from records.services.audit import audit_record


def release_key_set(*, actor: User, method: str, recipient: str = "") -> ReleaseKey:
    """Register (or replace) the actor's organisation's release key; audited."""
    if actor.role != Role.CUSTOMER or actor.organisation is None:
        raise PermissionDenied("Only customer users set their organisation's release key.")
    recipient = recipient.strip() if method == ReleaseKey.Method.RECIPIENT else ""
    key = ReleaseKey.objects.filter(organisation=actor.organisation).first() or ReleaseKey(
        organisation=actor.organisation
    )
    before = (key.method, key.recipient) if key.pk else ("", "")
    key.method, key.recipient, key.updated_by = method, recipient, actor
    if method == ReleaseKey.Method.RECIPIENT and not recipient:
        raise ValidationError({"recipient": "Give the age recipient (age1...) to release to."})
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
