"""Who deposits and evidence are sealed for: the active notary keys and the
break-glass key, as approved seal-recipient changes left them."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q

from escrow.models import NotaryRecipient
from vault.age import AgeError, X25519Recipient
from vault.keys import NoNotaryRecipient, evidence_identity


def seal_recipients() -> list[X25519Recipient]:
    """Every active key of an active notary, and the active break-glass key.

    Nothing else: no setting and no admin form adds a recipient. A key only
    becomes active through a change a notary approved (escrow.services.seal_changes)."""
    active = NotaryRecipient.objects.filter(is_active=True).filter(
        Q(kind=NotaryRecipient.Kind.NOTARY, notary__is_active=True)
        | Q(kind=NotaryRecipient.Kind.BREAK_GLASS)
    )
    rows = list(active.order_by("pk").values_list("kind", "public_key"))
    if not any(kind == NotaryRecipient.Kind.NOTARY for kind, _ in rows):
        raise NoNotaryRecipient(
            "No active notary key is registered, so no deposit can be sealed. The first "
            "notary is set up with `manage.py notary_bootstrap`; later keys are proposed "
            "and approved by a notary."
        )
    try:
        return [X25519Recipient.from_string(key) for _, key in rows]
    except AgeError as error:
        raise ImproperlyConfigured(f"A seal recipient is not an age recipient: {error}") from error


def evidence_recipients() -> list[X25519Recipient]:
    """Evidence is sealed to the notaries and to the system's evidence key."""
    return [*seal_recipients(), evidence_identity().recipient()]
