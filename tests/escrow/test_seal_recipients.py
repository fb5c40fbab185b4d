"""Who deposits and evidence are sealed for: every active notary key, the break-glass
recipient when configured, and (for evidence) the system's evidence key."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.models import Role
from escrow.models import NotaryRecipient
from escrow.services.recipients import evidence_recipients, seal_recipients
from tests.factories import UserFactory
from vault.age import X25519Identity
from vault.keys import NoNotaryRecipient, evidence_identity

NO_KEY = (
    "No active notary key is registered, so no deposit can be sealed. The first "
    "notary is set up with `manage.py notary_bootstrap`; later keys are proposed "
    "and approved by a notary."
)


def as_text(recipients) -> list[str]:
    return [recipient.to_string() for recipient in recipients]


def second_notary_key(*, active: bool = True, notary_active: bool = True) -> str:
    notary = UserFactory(
        email="deputy@notaris.example",
        role=Role.NOTARY,
        organisation=None,
        is_active=notary_active,
    )
    key = X25519Identity.generate().recipient().to_string()
    NotaryRecipient.objects.create(notary=notary, label="deputy", public_key=key, is_active=active)
    return key


def test_without_any_notary_key_nothing_can_be_sealed(db) -> None:
    with pytest.raises(NoNotaryRecipient) as missing:
        seal_recipients()
    assert str(missing.value) == NO_KEY
    with pytest.raises(NoNotaryRecipient):
        evidence_recipients()


def test_every_active_notary_key_is_a_recipient(notary_identity) -> None:
    deputy = second_notary_key()
    assert as_text(seal_recipients()) == [notary_identity.recipient().to_string(), deputy]


def test_a_deactivated_key_is_left_out(notary_identity) -> None:
    second_notary_key(active=False)
    assert as_text(seal_recipients()) == [notary_identity.recipient().to_string()]
    NotaryRecipient.objects.update(is_active=False)
    with pytest.raises(NoNotaryRecipient, match="No active notary key"):
        seal_recipients()


def test_the_key_of_a_notary_whose_account_is_inactive_is_left_out(notary, notary_identity) -> None:
    deputy = second_notary_key(notary_active=False)
    assert deputy not in as_text(seal_recipients())
    notary.is_active = False
    notary.save(update_fields=["is_active"])
    with pytest.raises(NoNotaryRecipient):
        seal_recipients()


def break_glass_row(public_key: str) -> NotaryRecipient:
    """A break-glass key as an approved change leaves it (tests/seal.py walks the approval)."""
    return NotaryRecipient.objects.create(
        kind=NotaryRecipient.Kind.BREAK_GLASS, label="physical safe", public_key=public_key
    )


def test_the_break_glass_recipient_is_added_last(notary_identity) -> None:
    break_glass = X25519Identity.generate().recipient().to_string()
    break_glass_row(break_glass)
    assert as_text(seal_recipients()) == [notary_identity.recipient().to_string(), break_glass]


def test_the_break_glass_recipient_alone_seals_nothing(db) -> None:
    """Break-glass is an addition: without a notary key nothing is sealed."""
    break_glass_row(X25519Identity.generate().recipient().to_string())
    with pytest.raises(NoNotaryRecipient):
        seal_recipients()


def test_a_stored_key_that_is_no_age_recipient_is_a_configuration_error(
    notary_identity,
) -> None:
    break_glass_row("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")  # create() skips the validators
    with pytest.raises(ImproperlyConfigured, match="A seal recipient is not an age recipient"):
        seal_recipients()


def test_evidence_is_sealed_for_the_seal_recipients_and_the_system_evidence_key(
    notary_identity,
) -> None:
    break_glass = X25519Identity.generate().recipient().to_string()
    break_glass_row(break_glass)
    assert as_text(evidence_recipients()) == [
        notary_identity.recipient().to_string(),
        break_glass,
        evidence_identity().recipient().to_string(),
    ]
