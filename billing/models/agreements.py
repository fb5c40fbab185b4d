from __future__ import annotations

from typing import ClassVar

from django.db import models

from accounts.models import Organisation, User
from billing.models.subscriptions import Subscription


class EscrowAgreement(models.Model):
    """One published version of the escrow agreement a customer accepts when
    subscribing. Versions are never edited: a change is a new version, made current.
    The text of each version ships in the repository (billing/agreement_texts/)."""

    version = models.PositiveIntegerField(unique=True)
    title = models.CharField(max_length=200)
    text = models.TextField()
    published_at = models.DateTimeField()
    is_current = models.BooleanField(default=False)

    class Meta:
        ordering: ClassVar = ["-version"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["is_current"],
                condition=models.Q(is_current=True),
                name="one_current_escrow_agreement",
                violation_error_message="Only one version of the agreement is current.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title}, version {self.version}"


class AgreementAcceptance(models.Model):
    """Who accepted which version of the agreement, for which organisation, when and
    from which address: recorded in the transaction that subscribes."""

    agreement = models.ForeignKey(
        EscrowAgreement, on_delete=models.PROTECT, related_name="acceptances"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="agreement_acceptances"
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="agreement_acceptances"
    )
    accepted_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    accepted_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(
        null=True, blank=True, help_text="The address the acceptance came from (REMOTE_ADDR)."
    )

    class Meta:
        ordering: ClassVar = ["-accepted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.organisation} accepted version {self.agreement.version}"
