"""Which VAT applies to a customer, and amounts that add up to the cent.

The vendor charges its domestic rate to customers in its own country and to
customers elsewhere in the EU without a VAT number; an EU business customer
with a VAT number pays no VAT and accounts for it itself (reverse charge); a
customer outside the EU pays no VAT (export of services)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import models

CENT = Decimal("0.01")

EU_COUNTRIES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
REVERSE_CHARGE_NOTE = (
    "VAT reverse-charged: the customer accounts for the VAT (Article 196, Council "
    "Directive 2006/112/EC)."
)
OUTSIDE_EU_NOTE = "No VAT: service supplied to a customer outside the European Union."


class VatTreatment(models.TextChoices):
    DOMESTIC = "domestic", "Domestic VAT"
    REVERSE_CHARGE = "reverse_charge", "Intra-EU reverse charge"
    OUTSIDE_EU = "outside_eu", "Outside the EU"


@dataclass(frozen=True)
class VatDecision:
    treatment: VatTreatment
    rate: Decimal
    note: str


def vat_for(
    *, country: str, vat_number: str, vendor_country: str, domestic_rate: Decimal
) -> VatDecision:
    """The VAT treatment of an invoice to a customer in ``country``."""
    if country == vendor_country:
        return VatDecision(VatTreatment.DOMESTIC, domestic_rate, "")
    if country in EU_COUNTRIES:
        if vat_number:
            return VatDecision(VatTreatment.REVERSE_CHARGE, Decimal("0"), REVERSE_CHARGE_NOTE)
        return VatDecision(VatTreatment.DOMESTIC, domestic_rate, "")
    return VatDecision(VatTreatment.OUTSIDE_EU, Decimal("0"), OUTSIDE_EU_NOTE)


@dataclass(frozen=True)
class Amounts:
    lines: tuple[Decimal, ...]
    net: Decimal
    vat: Decimal
    total: Decimal


def invoice_amounts(*, line_amounts: list[Decimal], rate: Decimal) -> Amounts:
    """Round each line to the cent, VAT once on the net total, total = net + VAT.

    Rounding VAT once on the total (not per line) is what makes the three
    figures on the invoice add up exactly, whatever the lines."""
    lines = tuple(amount.quantize(CENT, rounding=ROUND_HALF_UP) for amount in line_amounts)
    net = sum(lines, Decimal("0.00"))
    vat = (net * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    return Amounts(lines=lines, net=net, vat=vat, total=net + vat)
