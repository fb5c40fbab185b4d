from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts import roles
from accounts.models.organisations import Organisation
from accounts.models.products import Product
from escrow.validators import AGE_RECIPIENT_MAX_LENGTH


class ReleaseCondition(models.TextChoices):
    INSOLVENCY = "insolvency", "Bankruptcy or insolvency"
    CESSATION = "cessation", "Liquidation or cessation of business"
    MAINTENANCE_FAILURE = "maintenance_failure", "Uncured failure to maintain or support"
    END_OF_LIFE = "end_of_life", "End of life without successor"
    VOLUNTARY = "voluntary", "Voluntary release by the vendor"


# A voluntary release is the vendor's act, never a customer's choice: a customer
# claims one of these; the vendor (or staff on its written instruction) releases.
CUSTOMER_CONDITIONS = [
    condition for condition in ReleaseCondition if condition != ReleaseCondition.VOLUNTARY
]


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

# Open: every state before a final one (approved, released, rejected, withdrawn). An
# organisation has at most one open claim per product: a second would notify the
# vendor again and ask the notary to decide the same question twice.
OPEN_STATES = WITHDRAWABLE_STATES
FINAL_STATES = [ClaimState.APPROVED, ClaimState.RELEASED, ClaimState.REJECTED, ClaimState.WITHDRAWN]


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
    contest_deadline = models.DateTimeField(null=True, blank=True)
    vendor_statement = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reasons = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            # The service refuses a second open claim with a message naming the first;
            # this index makes a race between two filings end the same way.
            models.UniqueConstraint(
                fields=["claimant", "product"],
                condition=models.Q(state__in=OPEN_STATES),
                name="one_open_claim_per_organisation_and_product",
                violation_error_message=(
                    "This organisation already has an open release claim for this product."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"Claim #{self.pk} by {self.claimant} for {self.product}"

    @transition(
        field=state,
        source=ClaimState.FILED,
        target=ClaimState.VENDOR_NOTIFIED,
        permission=roles.system_only,
    )
    def notify_vendor(self, *, contest_deadline: datetime | None) -> None:
        self.contest_deadline = contest_deadline

    @transition(
        field=state,
        source=ClaimState.VENDOR_NOTIFIED,
        target=ClaimState.CONTESTED,
        permission=roles.staff_or_system,
    )
    def contest(self, *, statement: str) -> None:
        self.vendor_statement = statement

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
        source=ClaimState.VENDOR_NOTIFIED,
        target=ClaimState.UNCONTESTED,
        permission=roles.staff_or_system,
    )
    def release_voluntarily(self) -> None:
        """The vendor releases of its own will (through its signed link, or staff on its
        written instruction): the claim no longer waits for the contest period."""
        self.condition = ReleaseCondition.VOLUNTARY

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
    def approve(self, *, notary: Any, reasons: str, at: datetime) -> None:
        self.decided_by, self.decision_reasons, self.decided_at = notary, reasons, at

    @transition(
        field=state,
        source=ClaimState.UNDER_REVIEW,
        target=ClaimState.REJECTED,
        permission=roles.notary_only,
    )
    def reject(self, *, notary: Any, reasons: str, at: datetime) -> None:
        self.decided_by, self.decision_reasons, self.decided_at = notary, reasons, at

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


class ClaimEvidence(models.Model):
    """A document supporting a claim or a contest. Stored encrypted (age) for the
    notaries and the system's evidence key, in the storage sites; never public."""

    class Side(models.TextChoices):
        CLAIMANT = "claimant", "Claimant"
        VENDOR = "vendor", "Vendor"

    claim = models.ForeignKey(ReleaseClaim, on_delete=models.PROTECT, related_name="evidence")
    side = models.CharField(max_length=20, choices=Side.choices)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="Of the document itself.")
    key = models.CharField(max_length=512, unique=True, help_text="The sealed copy in the sites.")
    sealed_sha256 = models.CharField(max_length=64)
    sealed_size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["claim", "created_at"]
        verbose_name_plural = "claim evidence"

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_side_display()}, claim #{self.claim_id})"


class ClaimRelease(models.Model):
    """What an approved claim released: a new age header over the sealed payload of
    the deposit, for the claimant's release key (its own, or the one its passphrase
    opens). The payload is not copied:
    the released file is this header followed by the stored payload."""

    claim = models.OneToOneField(
        ReleaseClaim, on_delete=models.PROTECT, related_name="release_record"
    )
    deposit = models.ForeignKey("escrow.Deposit", on_delete=models.PROTECT, related_name="+")
    header_key = models.CharField(max_length=512, unique=True)
    header_sha256 = models.CharField(max_length=64)
    header_size = models.PositiveIntegerField()
    payload_offset = models.PositiveIntegerField(
        help_text="Where the payload starts in the sealed file."
    )
    released_size = models.BigIntegerField(help_text="Header plus payload, in bytes.")
    recipient = models.CharField(
        max_length=AGE_RECIPIENT_MAX_LENGTH, help_text="The age recipient released to."
    )
    letter_key = models.CharField(max_length=512, blank=True)
    released_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Release for claim #{self.claim_id}"
