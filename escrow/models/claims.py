from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from escrow import roles
from escrow.models.organisations import Organisation
from escrow.models.products import Product


class ReleaseCondition(models.TextChoices):
    INSOLVENCY = "insolvency", "Bankruptcy or insolvency"
    CESSATION = "cessation", "Liquidation or cessation of business"
    MAINTENANCE_FAILURE = "maintenance_failure", "Uncured failure to maintain or support"
    END_OF_LIFE = "end_of_life", "End of life without successor"
    VOLUNTARY = "voluntary", "Voluntary release by the vendor"


class ClaimState(models.TextChoices):
    FILED = "filed", "Filed"
    VENDOR_NOTIFIED = "vendor_notified", "Vendor notified"
    CONTESTED = "contested", "Contested by the vendor"
    UNCONTESTED = "uncontested", "Uncontested"
    UNDER_REVIEW = "under_review", "Under review by the notary"
    EVIDENCE_REQUESTED = "evidence_requested", "More evidence requested"
    APPROVED = "approved", "Approved"
    RELEASED = "released", "Released"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


# A claimant may withdraw until the notary has decided.
WITHDRAWABLE_STATES = [
    ClaimState.FILED,
    ClaimState.VENDOR_NOTIFIED,
    ClaimState.CONTESTED,
    ClaimState.UNCONTESTED,
    ClaimState.UNDER_REVIEW,
    ClaimState.EVIDENCE_REQUESTED,
]


class ReleaseClaim(ConcurrentTransitionMixin, models.Model):
    """A subscriber's claim that a release condition is met for a product."""

    claimant = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="release_claims",
        limit_choices_to={"kind": Organisation.Kind.CUSTOMER},
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="filed_claims"
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="release_claims")
    condition = models.CharField(max_length=30, choices=ReleaseCondition.choices)
    statement = models.TextField()
    state = FSMField(
        max_length=20, choices=ClaimState.choices, default=ClaimState.FILED, protected=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Claim #{self.pk} by {self.claimant} for {self.product}"

    @transition(
        field=state,
        source=ClaimState.FILED,
        target=ClaimState.VENDOR_NOTIFIED,
        permission=roles.system_only,
    )
    def notify_vendor(self) -> None:
        pass

    @transition(
        field=state,
        source=ClaimState.VENDOR_NOTIFIED,
        target=ClaimState.CONTESTED,
        permission=roles.staff_or_system,
    )
    def contest(self) -> None:
        pass

    @transition(
        field=state,
        source=ClaimState.VENDOR_NOTIFIED,
        target=ClaimState.UNCONTESTED,
        permission=roles.system_only,
    )
    def mark_uncontested(self) -> None:
        pass

    @transition(
        field=state,
        source=[ClaimState.CONTESTED, ClaimState.UNCONTESTED],
        target=ClaimState.UNDER_REVIEW,
        permission=roles.notary_or_system,
    )
    def start_review(self) -> None:
        pass

    @transition(
        field=state,
        source=ClaimState.UNDER_REVIEW,
        target=ClaimState.EVIDENCE_REQUESTED,
        permission=roles.notary_only,
    )
    def request_evidence(self) -> None:
        pass

    @transition(
        field=state,
        source=ClaimState.EVIDENCE_REQUESTED,
        target=ClaimState.UNDER_REVIEW,
        permission=roles.claimant_member,
    )
    def provide_evidence(self) -> None:
        pass

    @transition(
        field=state,
        source=ClaimState.UNDER_REVIEW,
        target=ClaimState.APPROVED,
        permission=roles.notary_only,
    )
    def approve(self) -> None:
        pass

    @transition(
        field=state,
        source=ClaimState.UNDER_REVIEW,
        target=ClaimState.REJECTED,
        permission=roles.notary_only,
    )
    def reject(self) -> None:
        pass

    @transition(
        field=state,
        source=ClaimState.APPROVED,
        target=ClaimState.RELEASED,
        permission=roles.notary_or_system,
    )
    def release(self) -> None:
        pass

    @transition(
        field=state,
        source=WITHDRAWABLE_STATES,
        target=ClaimState.WITHDRAWN,
        permission=roles.claimant_member,
    )
    def withdraw(self) -> None:
        pass
