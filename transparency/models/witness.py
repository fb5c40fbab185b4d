"""The notaries as witnesses: each keeps an SSH Ed25519 key of its own (the system holds
only the public half) and co-signs the checkpoint it saw when it acknowledged a deposit."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from transparency.models.log import Checkpoint


class WitnessKey(models.Model):
    """A notary's SSH Ed25519 public key for witness co-signatures; one active per notary.
    Replacing it retires the old one (kept: its signatures still verify with it)."""

    notary = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="witness_keys",
        limit_choices_to={"role": "notary"},
    )
    public_key = models.CharField(max_length=200, help_text="The 'ssh-ed25519 AAAA...' line.")
    fingerprint = models.CharField(max_length=100, help_text="SHA256:... as ssh-keygen -l shows.")
    added_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["notary", "-added_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["notary"],
                condition=models.Q(retired_at__isnull=True),
                name="one_active_witness_key_per_notary",
            ),
        ]

    def __str__(self) -> str:
        # Not the fingerprint: one long unbreakable token would widen a phone's page.
        state = "retired" if self.retired_at else "active"
        return f"witness key of {self.notary}, added {self.added_at:%Y-%m-%d} ({state})"


class WitnessSignature(models.Model):
    """A notary's SSHSIG (witness namespace) over a checkpoint body: evidence, held
    outside the system's control, that the log had this root at this size."""

    notary = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="witness_signatures"
    )
    key = models.ForeignKey(WitnessKey, on_delete=models.PROTECT, related_name="signatures")
    signed_checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.PROTECT, related_name="witness_signatures"
    )
    signature = models.TextField(help_text="SSHSIG, armored, witness namespace.")
    signed_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["signed_checkpoint__size", "signed_at"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["signed_checkpoint", "key"], name="one_witness_signature_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"witness signature of {self.notary} on {self.signed_checkpoint}"

    @property
    def checkpoint(self) -> str:
        """The checkpoint body the notary signed: exactly the bytes its SSHSIG covers, so
        ``ssh-keygen -Y verify ... < checkpoint`` checks it as saved."""
        return self.signed_checkpoint.body

    @property
    def public_key(self) -> str:
        """The notary's ``ssh-ed25519 ...`` line that verifies the signature."""
        return self.key.public_key
