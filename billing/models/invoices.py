from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import ClassVar

from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models import DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Organisation
from billing.fees import percent_label
from billing.models.licences import Currency
from billing.models.subscriptions import Subscription
from billing.vat import VatTreatment


class InvoiceCounter(models.Model):
    """The last invoice number used in a calendar year. Issuers lock the row, so
    numbers are handed out one at a time, without gaps, even under concurrency."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


MONEY: DecimalField[Decimal, Decimal] = DecimalField(max_digits=14, decimal_places=2)
ZERO = Value(Decimal("0.00"), output_field=MONEY)


def _sum_of(model: str, field: str, link: str) -> Coalesce:
    """The sum of ``field`` over the rows of ``model`` whose ``link`` is the invoice, as a
    subquery (joins would multiply rows when an invoice has payments and credit notes)."""
    rows = (
        apps.get_model("billing", model)
        .objects.filter(**{link: OuterRef("pk")})
        .order_by()
        .values(link)
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=MONEY), ZERO)


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def with_amounts(self) -> InvoiceQuerySet:
        """Each invoice with ``paid``, ``credited``, ``refunded`` and ``due`` computed in
        the query: a list of invoices costs one query, whatever its length. ``due`` is
        what ``Invoice.amount_due()`` returns, negative when money is owed back."""
        return self.annotate(
            paid=_sum_of("Payment", "amount", "invoice"),
            credit_note_totals=_sum_of("Invoice", "total", "corrects"),
            refunded=_sum_of("Refund", "amount", "invoice"),
        ).annotate(
            credited=-models.F("credit_note_totals"),
            due=models.F("total")
            + models.F("credit_note_totals")
            - models.F("paid")
            + models.F("refunded"),
        )


class Invoice(models.Model):
    """An issued invoice or credit note. Never edited or deleted once issued (a
    database trigger refuses it); corrections are credit notes. Whether it is
    paid follows from its payments, so nothing on it ever changes."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"

    class Purpose(models.TextChoices):
        SUBSCRIPTION = "subscription", "Escrow subscription, first period"
        RENEWAL = "renewal", "Escrow subscription renewal"
        DATA_EXPORT = "data_export", "Data export"
        CORRECTION = "correction", "Correction"

    number = models.CharField(max_length=20, unique=True)
    year = models.PositiveIntegerField()
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INVOICE)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    customer = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="invoices")
    vendor = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices"
    )
    corrects = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_notes"
    )
    issued_on = models.DateField()
    due_on = models.DateField()
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3, choices=Currency.choices)
    net_amount = models.DecimalField(max_digits=14, decimal_places=2)
    vat_treatment = models.CharField(max_length=20, choices=VatTreatment.choices)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=4)
    vat_amount = models.DecimalField(max_digits=14, decimal_places=2)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    vat_note = models.CharField(max_length=300, blank=True)
    customer_details = models.JSONField(help_text="The customer as it was when invoiced.")
    vendor_details = models.JSONField(help_text="The vendor as it was when invoiced.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering: ClassVar = ["-year", "-sequence"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["year", "sequence"], name="one_number_per_year"),
            # Amounts have two decimals, so within a tenth of a cent is exactly equal; the
            # margin is for SQLite, which compares these columns as floating point.
            models.CheckConstraint(
                name="invoice_adds_up_to_the_cent",
                condition=models.Q(
                    total__gte=models.F("net_amount") + models.F("vat_amount") - Decimal("0.001"),
                    total__lte=models.F("net_amount") + models.F("vat_amount") + Decimal("0.001"),
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number}"

    def amount_paid(self) -> Decimal:
        paid = self.payments.aggregate(total=Sum("amount"))["total"]
        return paid or Decimal("0.00")

    def amount_credited(self) -> Decimal:
        credited = self.credit_notes.aggregate(total=Sum("total"))["total"]
        return -(credited or Decimal("0.00"))

    def amount_refunded(self) -> Decimal:
        refunded = self.refunds.aggregate(total=Sum("amount"))["total"]
        return refunded or Decimal("0.00")

    def amount_due(self) -> Decimal:
        """What the customer still owes; negative when it is owed money back (it paid
        an invoice that was credited afterwards, and no refund is recorded yet)."""
        return self.total - self.amount_credited() - self.amount_paid() + self.amount_refunded()

    def refund_owed(self) -> Decimal:
        """What is owed back to the customer: paid, then credited, and not yet refunded."""
        return max(-self.amount_due(), Decimal("0.00"))

    @property
    def is_settled(self) -> bool:
        return self.amount_due() <= 0

    @property
    def period_last_day(self) -> date | None:
        """The last day the invoiced period covers (``period_end`` is the day after it)."""
        return self.period_end - timedelta(days=1) if self.period_end else None

    @property
    def vat_label(self) -> str:
        """The exact VAT rate, e.g. "8.5%", never rounded to a whole percent."""
        return percent_label(self.vat_rate)

    @property
    def missing_addresses(self) -> list[str]:
        """The parties this invoice carries no postal address for (an EU invoice needs both)."""
        parties = [("vendor", self.vendor_details), ("customer", self.customer_details)]
        return [party for party, details in parties if not str(details.get("address", "")).strip()]


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=300)
    amount = models.DecimalField(max_digits=14, decimal_places=2, help_text="Net, excluding VAT.")

    class Meta:
        ordering: ClassVar = ["invoice", "position"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["invoice", "position"], name="one_line_per_position"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice.number} #{self.position}"


class Payment(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    received_on = models.DateField()
    reference = models.CharField(
        max_length=140, blank=True, default="", help_text="The bank's reference for the transfer."
    )
    #: The one-time key of the admin confirmation that recorded the payment: the same
    #: confirmation submitted twice records one payment (billing.payments.payment_record).
    confirmation = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["invoice", "received_on"]
        constraints: ClassVar = [
            models.CheckConstraint(name="payment_is_positive", condition=models.Q(amount__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.amount} for {self.invoice.number}"


class Refund(models.Model):
    """Money paid back to the customer on a credited invoice it had paid. Recorded by
    staff with a reason; never edited or deleted (a database trigger refuses it)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    paid_on = models.DateField()
    reason = models.CharField(max_length=300)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["invoice", "paid_on"]
        constraints: ClassVar = [
            models.CheckConstraint(name="refund_is_positive", condition=models.Q(amount__gt=0)),
        ]

    def __str__(self) -> str:
        return f"Refund of {self.amount} on {self.invoice.number}"
