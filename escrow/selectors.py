"""Reads shared by the portals."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Case, QuerySet, Value, When
from django.utils import timezone

from accounts.models import Organisation, Product
from escrow.models import Deposit, DepositState, ReleaseClaim
from escrow.models.claims import ClaimState
from records.models import AuditEntry


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


def deposits_for_register() -> QuerySet[Deposit]:
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
    """Every claim, most urgent first: waiting for the notary's decision before waiting
    on others, then the oldest."""
    waiting_for_notary = Case(
        When(state=ClaimState.UNDER_REVIEW, then=Value(0)),
        When(state=ClaimState.APPROVED, then=Value(1)),
        default=Value(2),
    )
    return ReleaseClaim.objects.select_related("claimant", "product").order_by(
        waiting_for_notary, "created_at"
    )


@dataclass(frozen=True)
class DepositRow:
    deposit: Deposit
    sites: list[str]


@dataclass(frozen=True)
class CoveredProduct:
    product: Product
    deposits: list[DepositRow]
    latest: Deposit | None
    age_days: int | None
    stale: bool


def covered_products_overview(organisation: Organisation) -> list[CoveredProduct]:
    """Each product escrow covers for the organisation, with its deposit history,
    the sites holding copies, and whether deposits have gone stale."""
    overview = []
    today = timezone.now()
    stale_after = settings.ESCROW_STALE_DEPOSIT_DAYS
    for product in products_covered_for(organisation).order_by("name"):
        deposits = list(
            Deposit.objects.filter(product=product)
            .exclude(state__in=[DepositState.REJECTED])
            .prefetch_related("copies")
            .order_by("-created_at")
        )
        rows = [
            DepositRow(deposit, sorted({copy.site for copy in deposit.copies.all()}))
            for deposit in deposits
        ]
        latest = deposits[0] if deposits else None
        age = (today - latest.created_at).days if latest else None
        overview.append(
            CoveredProduct(
                product=product,
                deposits=rows,
                latest=latest,
                age_days=age,
                stale=latest is None or (age is not None and age > stale_after),
            )
        )
    return overview


def claim_history(claim: ReleaseClaim) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(
            object_type=ReleaseClaim._meta.label, object_id=str(claim.pk)
        ).order_by("sequence")
    )
