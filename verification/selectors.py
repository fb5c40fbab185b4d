"""Reading verification records: one deposit's, many at once, and a product's last pass."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Max, Min, Q

from verification.models import BuildVerification, VerificationState


def verification_for(deposit_id: int) -> BuildVerification | None:
    """The deposit's verification record, or None when it has none (verification off,
    or a deposit from before verification existed)."""
    return BuildVerification.objects.filter(deposit_id=deposit_id).first()


def verifications_for(deposit_ids: Iterable[int]) -> dict[int, BuildVerification]:
    """The records of many deposits in one query, by deposit id: list pages show a
    badge per row and must stay at a constant number of queries."""
    ids = list(deposit_ids)
    if not ids:
        return {}
    return {
        record.deposit_id: record for record in BuildVerification.objects.filter(deposit_id__in=ids)
    }


def last_passed_at(product_id: int) -> datetime | None:
    """When a deposit of this product last passed its build, or None if none ever did."""
    return BuildVerification.objects.filter(
        product_id=product_id, state=VerificationState.PASSED
    ).aggregate(latest=Max("finished_at"))["latest"]


@dataclass(frozen=True)
class BuildHistory:
    """A product's builds as the stale-deposit warning counts them."""

    last_passed_at: datetime | None
    first_verified_at: datetime

    def stale(self, *, now: datetime) -> bool:
        """No passing build for more than ``ESCROW_VERIFY_STALE_DAYS``: since the last
        pass, or, for a product none of whose deposits ever built, since its first
        verification."""
        since = self.last_passed_at or self.first_verified_at
        return (now - since).days > settings.ESCROW_VERIFY_STALE_DAYS


def build_histories_for(product_ids: Iterable[int]) -> dict[int, BuildHistory]:
    """The build history of each of these products that has any verification, in one
    query (the customer's overview lists many products)."""
    ids = list(product_ids)
    if not ids:
        return {}
    rows = (
        BuildVerification.objects.filter(product_id__in=ids)
        .values("product_id")
        .annotate(
            passed=Max("finished_at", filter=Q(state=VerificationState.PASSED)),
            first=Min("created_at"),
        )
    )
    return {row["product_id"]: BuildHistory(row["passed"], row["first"]) for row in rows}
