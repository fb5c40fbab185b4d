from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from django.core.validators import MinValueValidator
from django.db import models

from accounts.models import Organisation, Product


class Currency(models.TextChoices):
    EUR = "EUR", "Euro"
    USD = "USD", "US dollar"
    GBP = "GBP", "Pound sterling"
    CHF = "CHF", "Swiss franc"


class LicenceAgreement(models.Model):
    """A customer's licence for a product, with the annual fee the escrow fee is based on."""

    customer = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="licences",
        limit_choices_to={"kind": Organisation.Kind.CUSTOMER},
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="licences")
    annual_fee = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.00"), "The licence fee cannot be negative.")],
        help_text="Annual licence fee, in the currency below, with at most two decimals.",
    )
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.EUR)
    start_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["customer", "product"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["customer", "product"], name="one_licence_per_product"),
            models.CheckConstraint(
                name="licence_fee_not_negative", condition=models.Q(annual_fee__gte=0)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} — {self.product}"
