from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts import roles
from accounts.models.organisations import Organisation
from escrow.validators import AGE_RECIPIENT_MAX_LENGTH, validate_age_recipient
from records.models.files import StoredFile


class ReleaseKey(models.Model):
    """How a release will be handed to this customer organisation: encrypted to its
    own age recipient, or to a key pair the portal made for it, whose private half is
    kept only encrypted under a passphrase the customer chose (age scrypt). The
    server never holds the passphrase, nor a way to open what is released."""

    class Method(models.TextChoices):
        RECIPIENT = "recipient", "Our age recipient (age1...)"
        PASSPHRASE = "passphrase", "A release passphrase"

    organisation = models.OneToOneField(
        Organisation, on_delete=models.PROTECT, related_name="release_key"
    )
    method = models.CharField(max_length=20, choices=Method.choices)
    recipient = models.CharField(
        max_length=AGE_RECIPIENT_MAX_LENGTH, blank=True, validators=[validate_age_recipient]
    )
    encrypted_identity = models.TextField(
        blank=True,
        help_text="Passphrase method: the identity, age-encrypted under the customer's passphrase.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(
                name="recipient_method_has_a_recipient",
                condition=(
                    models.Q(method="passphrase")
                    & ~models.Q(recipient="")
                    & ~models.Q(encrypted_identity="")
                )
                | (models.Q(method="recipient", encrypted_identity="") & ~models.Q(recipient="")),
                violation_error_message="Give the age recipient, or choose a passphrase.",
            ),
        ]

    def __str__(self) -> str:
        return f"Release key of {self.organisation}"


class DataExport(ConcurrentTransitionMixin, models.Model):
    """A general export of everything an organisation owns, as one ZIP.

    building -> ready (the ZIP is stored) or failed (with the reason); only the
    system moves it, through escrow.services.exports."""

    class State(models.TextChoices):
        BUILDING = "building", "Being built"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="data_exports"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    state = FSMField(max_length=20, choices=State.choices, default=State.BUILDING, protected=True)
    fee = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    invoice = models.ForeignKey(
        "billing.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    stored_file = models.ForeignKey(
        StoredFile, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    problem = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        constraints: ClassVar = [
            # One export at a time per organisation: a second request finds this one.
            models.UniqueConstraint(
                fields=["organisation"],
                condition=models.Q(state="building"),
                name="one_export_building_per_organisation",
            ),
        ]

    def __str__(self) -> str:
        return f"Export #{self.pk} of {self.organisation}"

    @transition(
        field=state, source=State.BUILDING, target=State.READY, permission=roles.system_only
    )
    def finish(self, *, stored_file: StoredFile) -> None:
        self.stored_file = stored_file
        self.finished_at = timezone.now()

    @transition(
        field=state, source=State.BUILDING, target=State.FAILED, permission=roles.system_only
    )
    def fail(self, *, problem: str) -> None:
        self.problem = problem
        self.finished_at = timezone.now()
