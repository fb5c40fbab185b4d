"""Who deposits and evidence are sealed for: the active notary keys and the
break-glass key, as approved seal-recipient changes left them."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q

from escrow.models import NotaryRecipient
from vault.age import AgeError, PublicRecipient, allow_mixed_post_quantum, parse_recipient
from vault.keys import NoNotaryRecipient, evidence_identity


def seal_recipients() -> list[PublicRecipient]:
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
        recipients = [parse_recipient(key) for _, key in rows]
    except AgeError as error:
        raise ImproperlyConfigured(f"A seal recipient is not an age recipient: {error}") from error
    # Notaries move from X25519 to hybrid post-quantum keys one approved change at
    # a time, so the set may mix both kinds for a while: allowed here, knowingly
    # (vault.age.allow_mixed_post_quantum); the notary portal and the seal admin
    # say that deposits are post-quantum protected only once every key is hybrid.
    return allow_mixed_post_quantum(recipients)


def evidence_recipients() -> list[PublicRecipient]:
    """Evidence is sealed to the notaries and to the system's evidence key."""
    return allow_mixed_post_quantum([*seal_recipients(), evidence_identity().recipient()])
