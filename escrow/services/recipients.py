"""Who deposits and evidence are sealed for: the active notary keys (and break-glass)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from escrow.models import NotaryRecipient
from vault.age import AgeError, X25519Recipient
from vault.keys import NoNotaryRecipient, evidence_identity


def seal_recipients() -> list[X25519Recipient]:
    """Every active notary recipient, and the break-glass recipient when configured."""
    keys = list(
        NotaryRecipient.objects.filter(is_active=True, notary__is_active=True)
        .order_by("pk")
        .values_list("public_key", flat=True)
    )
    if not keys:
        raise NoNotaryRecipient(
            "No active notary key is registered, so no deposit can be sealed. "
            "Staff add the notary's age recipient in the admin."
        )
    if settings.ESCROW_BREAK_GLASS_RECIPIENT:
        keys.append(settings.ESCROW_BREAK_GLASS_RECIPIENT)
    try:
        return [X25519Recipient.from_string(key) for key in keys]
    except AgeError as error:
        raise ImproperlyConfigured(f"A seal recipient is not an age recipient: {error}") from error


def evidence_recipients() -> list[X25519Recipient]:
    """Evidence is sealed to the notaries and to the system's evidence key."""
    return [*seal_recipients(), evidence_identity().recipient()]
