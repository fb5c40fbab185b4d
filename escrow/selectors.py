"""Reads shared by the portals."""

from __future__ import annotations

from django.db.models import QuerySet

from escrow.models import Deposit, Organisation, Product, ReleaseClaim
from escrow.models.claims import ClaimState


def products_licensed_by(organisation: Organisation) -> QuerySet[Product]:
    return Product.objects.filter(licences__customer=organisation).distinct()


def products_covered_for(organisation: Organisation) -> QuerySet[Product]:
    """Products the organisation licenses with an active escrow subscription."""
    return Product.objects.filter(
        licences__customer=organisation, licences__subscriptions__state="active"
    ).distinct()


def deposits_visible_to(organisation: Organisation) -> QuerySet[Deposit]:
    """Deposits of the products escrow covers for the organisation (metadata only is shown)."""
    return Deposit.objects.filter(product__in=products_covered_for(organisation)).select_related(
        "product"
    )


def deposit_register() -> QuerySet[Deposit]:
    return Deposit.objects.select_related("product", "product__vendor")


OPEN_CLAIM_STATES = [
    ClaimState.FILED,
    ClaimState.VENDOR_NOTIFIED,
    ClaimState.CONTESTED,
    ClaimState.UNCONTESTED,
    ClaimState.UNDER_REVIEW,
    ClaimState.EVIDENCE_REQUESTED,
    ClaimState.APPROVED,
]


def claims_for_notary() -> QuerySet[ReleaseClaim]:
    """Every claim, oldest open claims first (they are the most urgent)."""
    return ReleaseClaim.objects.select_related("claimant", "product").order_by("created_at")
