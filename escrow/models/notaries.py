from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts import roles
from escrow.validators import AGE_RECIPIENT_MAX_LENGTH, validate_age_recipient


class NotaryRecipient(models.Model):
    """An age public key deposits are sealed to: a notary's, or the break-glass key
    kept offline in the physical safe. Deposits are sealed to every active one.

    Only the public half is ever stored; the holder keeps the identity. Rows are
    created and retired only by an approved SealRecipientChange (or, for the very
    first notary, by ``manage.py notary_bootstrap``), never edited in the admin."""

    class Kind(models.TextChoices):
        NOTARY = "notary", "Notary key"
        BREAK_GLASS = "break_glass", "Break-glass key (offline, in the safe)"

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.NOTARY)
    notary = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="age_recipients",
        limit_choices_to={"role": "notary"},
        null=True,
        blank=True,
        help_text="The notary holding the identity; empty for the break-glass key.",
    )
    label = models.CharField(
        max_length=100, help_text="Where the identity is kept, e.g. 'office safe'."
    )
    public_key = models.CharField(
        max_length=AGE_RECIPIENT_MAX_LENGTH,
        unique=True,
        validators=[validate_age_recipient],
        help_text="The age recipient: age1... (X25519) or age1pq1... (hybrid post-quantum).",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["notary", "label"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(kind="notary", notary__isnull=False)
                | models.Q(kind="break_glass", notary__isnull=True),
                name="notary_key_has_a_notary_break_glass_has_none",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.public_key[:12]}…)"


class SealChangeState(models.TextChoices):
    PROPOSED = "proposed", "Proposed, waiting for a notary"
    EFFECTIVE = "effective", "Approved by a notary and in effect"
    REJECTED = "rejected", "Rejected by a notary"
    WITHDRAWN = "withdrawn", "Withdrawn"


def _may_approve(instance: Any, user: Any) -> bool:
    """A notary, and not the one who proposed it while another notary could decide."""
    return roles.notary_only(instance, user) and (
        user != instance.proposed_by or instance.sole_notary_may_self_approve
    )


class SealRecipientChange(ConcurrentTransitionMixin, models.Model):
    """A change to who deposits are sealed for: proposed (by staff or a notary),
    then approved by a trusted notary with a fresh second-factor code, and only
    then in effect. Staff can propose; only a notary can make a change effective."""

    class Kind(models.TextChoices):
        ADD_NOTARY_KEY = "add_notary_key", "Add a notary's key"
        RETIRE_KEY = "retire_key", "Retire a key"
        ADD_BREAK_GLASS_KEY = "add_break_glass_key", "Add the break-glass key"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    public_key = models.CharField(
        max_length=AGE_RECIPIENT_MAX_LENGTH,
        validators=[validate_age_recipient],
        help_text="The age1... or age1pq1... recipient.",
    )
    label = models.CharField(max_length=100, help_text="Where the identity is kept.")
    notary = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        limit_choices_to={"role": "notary"},
        help_text="For a notary's key: the notary who holds it.",
    )
    recipient = models.ForeignKey(
        NotaryRecipient,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="changes",
        help_text="The key this change retires, or the key it created once effective.",
    )
    reason = models.TextField(help_text="Why the change is needed.")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    sole_notary_may_self_approve = models.BooleanField(
        default=False,
        help_text="Set when proposed by the only active notary, who then decides alone.",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    state = FSMField(
        max_length=20,
        choices=SealChangeState.choices,
        default=SealChangeState.PROPOSED,
        protected=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.public_key[:16]}… ({self.state})"

    @transition(
        field=state,
        source=SealChangeState.PROPOSED,
        target=SealChangeState.EFFECTIVE,
        permission=_may_approve,
    )
    def approve(self, *, notary: Any, decision_reason: str, decided_at: datetime) -> None:
        self.decided_by = notary
        self.decision_reason = decision_reason
        self.decided_at = decided_at

    @transition(
        field=state,
        source=SealChangeState.PROPOSED,
        target=SealChangeState.REJECTED,
        permission=roles.notary_only,
    )
    def reject(self, *, notary: Any, decision_reason: str, decided_at: datetime) -> None:
        self.decided_by = notary
        self.decision_reason = decision_reason
        self.decided_at = decided_at

    @transition(
        field=state,
        source=SealChangeState.PROPOSED,
        target=SealChangeState.WITHDRAWN,
        permission=roles.staff_or_notary,
    )
    def withdraw(self, *, decision_reason: str, decided_at: datetime) -> None:
        self.decision_reason = decision_reason
        self.decided_at = decided_at


class NotaryStoredIdentity(models.Model):
    """A notary's age identity, encrypted under the notary's own passphrase (age
    scrypt). The server cannot open it: the notary unlocks it for one approval."""

    notary = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stored_identity"
    )
    encrypted_identity = models.TextField(help_text="ASCII-armored age file (scrypt).")
    public_key = models.CharField(
        max_length=AGE_RECIPIENT_MAX_LENGTH, validators=[validate_age_recipient]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Stored identity of {self.notary}"
