from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q

from accounts.models.organisations import Organisation


class Notification(models.Model):
    """An e-mail to send, written in the same transaction as the change it reports,
    so a crash between the change and the sending loses nothing: unsent rows are
    sent by the next run of the sender.

    It is meant for one audience: an organisation (a customer's contact address
    and users, or a vendor's contact address), every notary, or every member of
    staff. The row stays readable afterwards: the portals list it, so a party that
    missed the mail still finds it."""

    class Kind(models.TextChoices):
        INVOICE_ISSUED = "invoice_issued", "Invoice issued"
        PAYMENT_RECEIVED = "payment_received", "Payment received"
        SUBSCRIPTION_ACTIVATED = "subscription_activated", "Subscription activated"
        RENEWAL_DUE = "renewal_due", "Renewal due"
        SUBSCRIPTION_LAPSED = "subscription_lapsed", "Subscription lapsed"
        SUBSCRIPTION_CANCELLED = "subscription_cancelled", "Subscription cancelled"
        SUBSCRIPTION_REACTIVATED = "subscription_reactivated", "Subscription reactivated"
        REFUND_RECORDED = "refund_recorded", "Refund recorded"
        DEPOSIT_ACKNOWLEDGED = "deposit_acknowledged", "New deposit acknowledged"
        EXPORT_READY = "export_ready", "Data export ready"
        EXPORT_FAILED = "export_failed", "Data export failed"
        RELEASE_CLAIM_FILED = "release_claim_filed", "Release claim filed (to the vendor)"
        RELEASE_CLAIM_RECEIVED = "release_claim_received", "Release claim received"
        RELEASE_CLAIM_CONTESTED = "release_claim_contested", "Release claim contested"
        RELEASE_CLAIM_READY = "release_claim_ready", "Release claim ready for review"
        RELEASE_CLAIM_DECIDED = "release_claim_decided", "Release claim: the notary's step"
        RELEASE_CLAIM_OUTCOME = "release_claim_outcome", "Release claim outcome"
        RELEASE_CLAIM_WITHDRAWN = "release_claim_withdrawn", "Release claim withdrawn"
        RELEASE_READY = "release_ready", "Released deposit ready"
        SEAL_RECIPIENTS_CHANGED = "seal_recipients_changed", "Who deposits are sealed for changed"

    class Audience(models.TextChoices):
        ORGANISATION = "organisation", "One organisation"
        NOTARIES = "notaries", "Every notary"
        STAFF = "staff", "Every member of staff"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    audience = models.CharField(
        max_length=20, choices=Audience.choices, default=Audience.ORGANISATION
    )
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="notifications",
        null=True,
        blank=True,
        help_text="Set exactly when the audience is one organisation.",
    )
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    problem = models.TextField(
        blank=True, help_text="Why the last attempt did not send it (e.g. nobody to send it to)."
    )

    class Meta:
        ordering: ClassVar = ["-created_at", "-pk"]
        indexes: ClassVar = [
            models.Index(fields=["sent_at", "created_at"]),
            models.Index(fields=["audience", "organisation", "created_at"]),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=(Q(audience="organisation") & Q(organisation__isnull=False))
                | (~Q(audience="organisation") & Q(organisation__isnull=True)),
                name="notification_organisation_iff_audience_organisation",
            ),
            models.CheckConstraint(
                condition=Q(audience__in=["organisation", "notaries", "staff"]),
                name="notification_audience_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.audience_label}"

    @property
    def audience_label(self) -> str:
        """Who it is for, in words: the organisation's name, or the group."""
        if self.audience == self.Audience.ORGANISATION:
            return str(self.organisation)
        return str(self.get_audience_display())
