from __future__ import annotations

from typing import ClassVar

from django.db import models

from accounts.models.organisations import Organisation


class Notification(models.Model):
    """An e-mail to send, written in the same transaction as the change it reports,
    so a crash between the change and the sending loses nothing: unsent rows are
    sent by the next run of the sender."""

    class Kind(models.TextChoices):
        INVOICE_ISSUED = "invoice_issued", "Invoice issued"
        PAYMENT_RECEIVED = "payment_received", "Payment received"
        SUBSCRIPTION_ACTIVATED = "subscription_activated", "Subscription activated"
        RENEWAL_DUE = "renewal_due", "Renewal due"
        SUBSCRIPTION_LAPSED = "subscription_lapsed", "Subscription lapsed"
        DEPOSIT_ACKNOWLEDGED = "deposit_acknowledged", "New deposit acknowledged"
        EXPORT_READY = "export_ready", "Data export ready"
        RELEASE_CLAIM_FILED = "release_claim_filed", "Release claim filed (to the vendor)"
        RELEASE_CLAIM_DECIDED = "release_claim_decided", "Release claim: the notary's step"
        RELEASE_READY = "release_ready", "Released deposit ready"
        SEAL_RECIPIENTS_CHANGED = "seal_recipients_changed", "Who deposits are sealed for changed"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="notifications"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["-created_at"]
        indexes: ClassVar = [models.Index(fields=["sent_at", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.organisation}"
