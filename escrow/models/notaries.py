from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from escrow.validators import validate_age_recipient


class NotaryRecipient(models.Model):
    """A notary's age public key. Deposits are sealed to every active one.

    Only the public half is ever stored; the notary keeps the identity."""

    notary = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="age_recipients",
        limit_choices_to={"role": "notary"},
    )
    label = models.CharField(
        max_length=100, help_text="Where the identity is kept, e.g. 'office safe'."
    )
    public_key = models.CharField(
        max_length=100,
        unique=True,
        validators=[validate_age_recipient],
        help_text="The age recipient, starting with age1.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["notary", "label"]

    def __str__(self) -> str:
        return f"{self.label} ({self.public_key[:12]}…)"


class NotaryStoredIdentity(models.Model):
    """A notary's age identity, encrypted under the notary's own passphrase (age
    scrypt). The server cannot open it: the notary unlocks it for one approval."""

    notary = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stored_identity"
    )
    encrypted_identity = models.TextField(help_text="ASCII-armored age file (scrypt).")
    public_key = models.CharField(max_length=100, validators=[validate_age_recipient])
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Stored identity of {self.notary}"
