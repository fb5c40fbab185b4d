"""Reads shared by the portals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db.models import Case, Count, F, Prefetch, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from accounts.models import Organisation, Product
from escrow.models import Deposit, DepositCopy, DepositState, ReleaseClaim
from escrow.models.claims import ClaimState
from records.models import AuditEntry, Notification
from verification.models import BuildVerification
from verification.selectors import build_histories_for, verifications_for


def products_licensed_by(organisation: Organisation) -> QuerySet[Product]:
    return Product.objects.filter(licences__customer=organisation).distinct()


def products_covered_for(organisation: Organisation) -> QuerySet[Product]:
    """Products the organisation licenses with an active escrow subscription."""
    return Product.objects.filter(
        licences__customer=organisation, licences__subscriptions__state="active"
    ).distinct()


def attach_verifications(deposits: Iterable[Deposit]) -> list[Deposit]:
    """Set ``deposit.verification`` (a ``BuildVerification`` or None) on each deposit of
    a page or list, in one query whatever its length: the verification app sits below
    escrow and knows a deposit by id only, so there is no relation to prefetch. A
    queryset passed in is evaluated here, and the template then reads its cache."""
    listed = list(deposits)
    records = verifications_for(deposit.pk for deposit in listed) if listed else {}
    for deposit in listed:
        deposit.verification = records.get(deposit.pk)  # type: ignore[attr-defined]
    return listed


def deposits_visible_to(organisation: Organisation) -> QuerySet[Deposit]:
    """Deposits of the products escrow covers for the organisation (metadata only is shown),
    newest first (``attach_verifications`` adds their build verifications). A rejected
    upload never became a deposit and is not listed."""
    return (
        Deposit.objects.filter(product__in=products_covered_for(organisation))
        .exclude(state=DepositState.REJECTED)
        .select_related("product")
    )


def deposits_for_register() -> QuerySet[Deposit]:
    """The notary's register: every deposit that reached the notary (``attach_verifications``
    adds their build verifications). A rejected upload never did (the intake refused it
    before sealing), so it is not in the register."""
    return Deposit.objects.exclude(state=DepositState.REJECTED).select_related(
        "product", "product__vendor"
    )


def deposits_matching(
    deposits: QuerySet[Deposit],
    *,
    search: str = "",
    product: Product | None = None,
    vendor: Organisation | None = None,
    state: str = "",
    received_from: date | None = None,
    received_until: date | None = None,
) -> QuerySet[Deposit]:
    """The deposits of a list narrowed to what the reader asked for: ``search`` finds a
    version, a commit or the start of an archive's SHA-256; the dates are days, both
    included."""
    search = search.strip()
    if search:
        found = Q(version__icontains=search) | Q(pipeline__commit__icontains=search)
        if len(search) >= 6:
            found |= Q(archive_sha256__startswith=search.lower())
        deposits = deposits.filter(found)
    if product is not None:
        deposits = deposits.filter(product=product)
    if vendor is not None:
        deposits = deposits.filter(product__vendor=vendor)
    if state:
        deposits = deposits.filter(state=state)
    if received_from is not None:
        deposits = deposits.filter(created_at__date__gte=received_from)
    if received_until is not None:
        deposits = deposits.filter(created_at__date__lte=received_until)
    return deposits


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
    return ReleaseClaim.objects.select_related("claimant", "product", "product__vendor").order_by(
        waiting_for_notary, "created_at"
    )


def claims_matching(
    claims: QuerySet[ReleaseClaim],
    *,
    search: str = "",
    status: str = "",
    state: str = "",
    product: Product | None = None,
    organisation: Organisation | None = None,
    filed_from: date | None = None,
    filed_until: date | None = None,
) -> QuerySet[ReleaseClaim]:
    """The claims of a list narrowed to what the reader asked for: ``search`` finds a
    claim number ("12" or "#12"), a claimant or a product by name; ``status`` is
    "open" or "closed"; ``organisation`` is the claimant or the product's vendor."""
    search = search.strip()
    if search:
        found = Q(claimant__name__icontains=search) | Q(product__name__icontains=search)
        number = search.removeprefix("#").strip()
        if number.isascii() and number.isdigit():
            found |= Q(pk=int(number))
        claims = claims.filter(found)
    if status == "open":
        claims = claims.filter(state__in=OPEN_CLAIM_STATES)
    elif status == "closed":
        claims = claims.exclude(state__in=OPEN_CLAIM_STATES)
    if state:
        claims = claims.filter(state=state)
    if product is not None:
        claims = claims.filter(product=product)
    if organisation is not None:
        claims = claims.filter(Q(claimant=organisation) | Q(product__vendor=organisation))
    if filed_from is not None:
        claims = claims.filter(created_at__date__gte=filed_from)
    if filed_until is not None:
        claims = claims.filter(created_at__date__lte=filed_until)
    return claims


def notifications_matching(
    notifications: QuerySet[Notification],
    *,
    search: str = "",
    kind: str = "",
    sent_from: date | None = None,
    sent_until: date | None = None,
) -> QuerySet[Notification]:
    """Notifications narrowed to a word of their subject or text, a kind and the days
    they were written (both included)."""
    search = search.strip()
    if search:
        notifications = notifications.filter(
            Q(subject__icontains=search) | Q(body__icontains=search)
        )
    if kind:
        notifications = notifications.filter(kind=kind)
    if sent_from is not None:
        notifications = notifications.filter(created_at__date__gte=sent_from)
    if sent_until is not None:
        notifications = notifications.filter(created_at__date__lte=sent_until)
    return notifications


@dataclass(frozen=True)
class DepositRow:
    deposit: Deposit
    sites: list[str]
    verification: BuildVerification | None = None


@dataclass(frozen=True)
class CoveredProduct:
    product: Product
    deposits: list[DepositRow]
    """The latest ``OVERVIEW_DEPOSITS`` deposits, newest first (the product page has all)."""
    count: int
    latest: Deposit | None
    age_days: int | None
    stale: bool
    #: No passing build for more than ESCROW_VERIFY_STALE_DAYS (build verification on).
    build_stale: bool = False
    last_build_passed_at: datetime | None = None


OVERVIEW_DEPOSITS = 5


def covered_products_overview(organisation: Organisation) -> list[CoveredProduct]:
    """Each product escrow covers for the organisation, with its latest deposits, how
    many there are, the sites holding copies, and whether deposits have gone stale.

    A fixed number of queries whatever the number of products and deposits: the
    products with their deposit counts, the latest few deposits of each (a window
    numbers them per product), the copies of those, their build verifications, and
    (with build verification on) each product's last passing build."""
    listed = ~Q(deposits__state=DepositState.REJECTED)
    products = list(
        Product.objects.filter(pk__in=products_covered_for(organisation).values("pk"))
        .annotate(deposit_count=Count("deposits", filter=listed))
        .order_by("name")
    )
    latest_first = Deposit.objects.exclude(state=DepositState.REJECTED).annotate(
        position=Window(
            RowNumber(),
            partition_by=[F("product_id")],
            order_by=[F("created_at").desc(), F("id").desc()],
        )
    )
    recent = (
        latest_first.filter(product__in=[product.pk for product in products])
        .filter(position__lte=OVERVIEW_DEPOSITS)
        .order_by("-created_at", "-id")
        .prefetch_related(
            Prefetch("copies", queryset=DepositCopy.objects.only("deposit_id", "site"))
        )
    )
    by_product: dict[int, list[Deposit]] = {}
    for deposit in recent if products else []:
        by_product.setdefault(deposit.product_id, []).append(deposit)
    verifications = verifications_for(
        deposit.pk for deposits in by_product.values() for deposit in deposits
    )
    # One more query, only while builds are verified: each product's last passing build.
    builds = (
        build_histories_for(product.pk for product in products)
        if settings.ESCROW_VERIFY_ENABLED
        else {}
    )
    overview = []
    today = timezone.now()
    stale_after = settings.ESCROW_STALE_DEPOSIT_DAYS
    for product in products:
        deposits = by_product.get(product.pk, [])
        rows = [
            DepositRow(
                deposit,
                sorted({copy.site for copy in deposit.copies.all()}),
                verifications.get(deposit.pk),
            )
            for deposit in deposits
        ]
        latest = deposits[0] if deposits else None
        age = (today - latest.created_at).days if latest else None
        overview.append(
            CoveredProduct(
                product=product,
                deposits=rows,
                count=product.deposit_count,
                latest=latest,
                age_days=age,
                stale=latest is None or (age is not None and age > stale_after),
                build_stale=product.pk in builds and builds[product.pk].stale(now=today),
                last_build_passed_at=builds[product.pk].last_passed_at
                if product.pk in builds
                else None,
            )
        )
    return overview


def claim_history(claim: ReleaseClaim) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(
            object_type=ReleaseClaim._meta.label, object_id=str(claim.pk)
        ).order_by("sequence")
    )
