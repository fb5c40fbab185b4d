"""Demo data at scale: years of history for the demo's cast, written in bulk, so the
lists people read can be measured with the numbers a busy escrow service has
(``manage.py demo --scale``; issue 14: 10,000 deposits, 1,000 claims, 5,000 invoices,
50,000 audit entries).

The demo (``escrow.demo``) lives its past through the real services; at this scale
that would take hours, so this module writes the rows those services would have
written, in batches, and keeps every invariant they keep:

- deposits carry a signed manifest (some with completeness warnings), their copies
  in every storage site and, once acknowledged, the notary's signed receipt;
- at most one open claim per organisation and product (the database refuses more);
- invoices and credit notes are numbered per calendar year without gaps, in the
  order of their dates, after the numbers already issued (the year's counter moves
  on), and add up to the cent; nothing issued is ever updated (triggers refuse it);
- every seeded change has its audit entry, appended to the hash chain (each entry
  hashes the one before it, the chain head moves to the last), so ``manage.py
  audit_verify`` still passes. The entries are dated when the change happened, so
  the seeded block of the chain (appended after the demo's own entries) runs from
  three years ago to yesterday; read access (certificate downloads, second factors)
  fills the log up to the number asked for.

Dated history needs ``auto_now``/``auto_now_add`` fields set by hand: they are
switched off while the rows are written (``_dates_as_given``)."""

from __future__ import annotations

import hashlib
import random
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from accounts.models import Organisation, Product, User
from billing.models import (
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    LicenceAgreement,
    Payment,
    Subscription,
)
from billing.vat import invoice_amounts, vat_for
from escrow.demo import DEMO_ORGANISATIONS
from escrow.models import (
    ClaimState,
    Deposit,
    DepositAcknowledgement,
    DepositCopy,
    DepositState,
    DepositToken,
    NotaryRecipient,
    ReleaseClaim,
    ReleaseCondition,
)
from escrow.models.claims import OPEN_STATES
from records.models import AuditChainHead, AuditEntry, Notification
from transparency.services import log_append_many
from vault.keys import system_signing_key
from vault.manifest import canonical_json, sign_manifest
from vault.manifest_completeness import NO_BUILD_FILE, NO_LICENCE, NO_LOCK_FILE, NO_README

#: Seeded deposits are built by this pipeline: how a second run finds the first.
SCALE_BUILD_URL = "https://ci.example/scale"
BATCH = 2000
HISTORY_DAYS = 3 * 365
CENT = Decimal("0.01")


@dataclass(frozen=True)
class ScaleCounts:
    """How many rows of each kind to add (the issue's numbers by default)."""

    deposits: int = 10_000
    claims: int = 1_000
    invoices: int = 5_000
    audit_entries: int = 50_000
    notifications: int = 3_000

    def times(self, factor: float) -> ScaleCounts:
        """Every count multiplied by ``factor`` (rounded, at least one of each)."""
        if not factor > 0:
            raise ValueError(f"The scale factor must be a positive number, not {factor}.")
        return ScaleCounts(
            **{f.name: max(1, round(getattr(self, f.name) * factor)) for f in fields(self)}
        )

    def but(self, **counts: int | None) -> ScaleCounts:
        """These counts with some replaced (``None`` keeps the count)."""
        given = {name: value for name, value in counts.items() if value is not None}
        for name, value in given.items():
            if value < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, not {value}.")
        return replace(self, **given)


@dataclass
class ScaleResult:
    """What was added (``skipped`` when an earlier run had seeded the data already)."""

    added: dict[str, int] = field(default_factory=dict)
    skipped: str = ""


class ScaleRefused(Exception):
    """The demo data the seeding builds on is missing; the message says what to run."""


@dataclass
class _Cast:
    vendor: Organisation
    customers: list[Organisation]
    users: dict[int, User]
    products: list[Product]
    licences: list[LicenceAgreement]
    subscriptions: dict[int, Subscription]
    notary: User
    staff: User
    recipient: str
    tokens: dict[int, DepositToken | None]


@dataclass
class _Event:
    """An audit entry to append: what changed, when, by whom."""

    at: datetime
    action: str
    target: models.Model | None
    actor: User | None = None
    actor_label: str = ""
    from_state: str = ""
    to_state: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _dates_as_given(*model_classes: type[models.Model]) -> Iterator[None]:
    """Let the rows keep the dates given to them: ``auto_now`` and ``auto_now_add``
    would otherwise stamp every historical row with the present."""
    switched = [
        (f, f.auto_now, f.auto_now_add)  # type: ignore[attr-defined]
        for model in model_classes
        for f in model._meta.concrete_fields
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    for f, _, _ in switched:
        f.auto_now = f.auto_now_add = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in switched:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add  # type: ignore[attr-defined]


def _sha(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _label(user: User | None) -> str:
    return f"{user.role}:{user.email}" if user is not None else "system"


def _cast() -> _Cast:
    vendor = Organisation.objects.filter(name="Acme Software B.V.", kind="vendor").first()
    customers = list(
        Organisation.objects.filter(name__in=DEMO_ORGANISATIONS, kind="customer").order_by("pk")
    )
    products = list(Product.objects.filter(vendor=vendor).order_by("pk")) if vendor else []
    notary = User.objects.filter(email="notary@notaris.example").first()
    staff = User.objects.filter(email="staff@acme.example").first()
    recipient = NotaryRecipient.objects.filter(notary=notary).first() if notary else None
    if not (vendor and customers and products and notary and staff and recipient):
        raise ScaleRefused(
            "The demo's organisations, products and people are missing: the scaled data "
            "builds on them. Run `manage.py demo` first (`manage.py demo --scale` does)."
        )
    users: dict[int, User] = {}
    for user in User.objects.filter(organisation__in=customers).order_by("pk"):
        users.setdefault(user.organisation_id, user)  # type: ignore[arg-type]
    licences = list(
        LicenceAgreement.objects.filter(customer__in=customers, product__in=products)
        .select_related("customer", "product")
        .order_by("pk")
    )
    subscriptions: dict[int, Subscription] = {}
    for subscription in Subscription.objects.filter(licence__in=licences).order_by("pk"):
        subscriptions[subscription.licence_id] = subscription
    tokens = {
        product.pk: DepositToken.objects.filter(product=product).order_by("-pk").first()
        for product in products
    }
    return _Cast(
        vendor=vendor,
        customers=customers,
        users=users,
        products=products,
        licences=licences,
        subscriptions=subscriptions,
        notary=notary,
        staff=staff,
        recipient=recipient.public_key,
        tokens=tokens,
    )


def _moments(rng: random.Random, count: int, start: datetime, end: datetime) -> list[datetime]:
    """``count`` moments between ``start`` and ``end``, oldest first, in office hours."""
    span = (end - start).total_seconds()
    moments = []
    for _ in range(count):
        moment = start + timedelta(seconds=rng.random() * span)
        moments.append(moment.replace(hour=rng.randint(7, 18), microsecond=rng.randint(0, 999999)))
    return sorted(min(moment, end) for moment in moments)


def _bulk(model: type[models.Model], rows: Sequence[models.Model]) -> list[Any]:
    return model.objects.bulk_create(rows, batch_size=BATCH)  # type: ignore[attr-defined]


def _insert(model: type[models.Model], rows: Sequence[dict[str, Any]]) -> None:
    """INSERT plain rows (a value for every column but the id), without building a
    model instance per row: for the two largest tables (audit entries and deposit
    copies, 125,000 rows at full scale), where ``bulk_create``'s per-value work took
    most of the seeding's time. Dates and JSON are adapted as Django adapts them."""
    ops = connection.ops
    columns = [f for f in model._meta.concrete_fields if not f.primary_key]
    adapters: list[Callable[[Any], Any] | None] = []
    for column in columns:
        kind = column.get_internal_type()
        if kind == "DateTimeField":
            adapters.append(ops.adapt_datetimefield_value)
        elif kind == "JSONField":
            adapters.append(lambda value: ops.adapt_json_value(value, None))
        else:
            adapters.append(None)
    names = ", ".join(ops.quote_name(column.column) for column in columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {ops.quote_name(model._meta.db_table)} ({names}) VALUES ({marks})"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            cursor.executemany(
                sql,
                [
                    tuple(
                        adapt(row[column.attname]) if adapt else row[column.attname]
                        for column, adapt in zip(columns, adapters, strict=True)
                    )
                    for row in rows[start : start + BATCH]
                ],
            )


# --- Deposits -----------------------------------------------------------------------

_DEPOSIT_MIX = [
    (DepositState.ACKNOWLEDGED, 80),
    (DepositState.REPLICATED, 9),
    (DepositState.STORED, 3),
    (DepositState.FAILED, 4),
    (DepositState.REJECTED, 4),
]
_WARNINGS = [NO_LOCK_FILE, NO_README, NO_LICENCE, NO_BUILD_FILE]
_REJECTIONS = [
    "The archive is not a tar file (or a gzip-compressed one): it cannot be read.",
    "The archive's SHA-256 differs from the X-Archive-SHA256 the pipeline sent.",
    "The archive is empty: it holds no files.",
]
_FAILURES = [
    ("stored", "The replica site did not answer within 30 seconds; retried automatically."),
    ("sealed", "The primary site refused the write: no space left on the volume."),
    ("verified", "Sealing stopped: no notary recipient is active."),
]
_EARLIER = {
    DepositState.VERIFIED: DepositState.RECEIVED,
    DepositState.SEALED: DepositState.VERIFIED,
    DepositState.STORED: DepositState.SEALED,
    DepositState.REPLICATED: DepositState.STORED,
    DepositState.ACKNOWLEDGED: DepositState.REPLICATED,
}
_PIPELINE = [DepositState.VERIFIED, DepositState.SEALED, DepositState.STORED]


def _manifest(deposit: Deposit, rng: random.Random, recipient: str) -> dict[str, Any]:
    files = rng.randint(40, 12000)
    warnings = rng.sample(_WARNINGS, rng.choice([1, 1, 2])) if rng.random() < 0.08 else []
    root = f"{deposit.product.slug}-{deposit.version}"

    def found(warning: str, name: str) -> dict[str, Any]:
        present = warning not in warnings
        return {"present": present, "count": int(present), "nearest": [f"{root}/{name}"] * present}

    total = (deposit.archive_size or 0) * 4
    return {
        "schema": "escrow-manifest/1",
        "product": deposit.product.slug,
        "version": deposit.version,
        "created_at": deposit.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pipeline": deposit.pipeline,
        "archive": {
            "format": "tar+gzip",
            "size": deposit.archive_size,
            "sha256": deposit.archive_sha256,
        },
        "completeness": {
            "files": files,
            "total_size": total,
            "size_by_extension": [
                {"extension": ".c", "files": files * 3 // 4, "size": total * 3 // 4},
                {"extension": ".h", "files": files - files * 3 // 4, "size": total // 4},
            ],
            "build_files": found(NO_BUILD_FILE, "Makefile"),
            "lock_files": found(NO_LOCK_FILE, "package-lock.json"),
            "readme": found(NO_README, "README.md"),
            "licence": found(NO_LICENCE, "LICENSE"),
            "warnings": warnings,
        },
        "sealed_for": [recipient],
        "member_count": files,
    }


def _deposits(cast: _Cast, count: int, rng: random.Random, now: datetime) -> list[_Event]:
    weights = [60, 25, 15][: len(cast.products)]
    start = now - timedelta(days=HISTORY_DAYS)
    moments = _moments(rng, count, start, now - timedelta(days=1))
    states = [state for state, _ in _DEPOSIT_MIX]
    key = system_signing_key()
    numbers: dict[int, int] = defaultdict(int)
    deposits = []
    for moment in moments:
        product = rng.choices(
            cast.products, weights=(weights + [5] * len(cast.products))[: len(cast.products)]
        )[0]
        numbers[product.pk] += 1
        n = numbers[product.pk]
        state = rng.choices(states, weights=[w for _, w in _DEPOSIT_MIX])[0]
        version = f"{10 + n // 1000}.{n // 10 % 100}.{n % 10}"
        size = rng.randint(200_000, 400_000_000)
        deposit = Deposit(
            product=product,
            version=version,
            archive_sha256=_sha("archive", product.slug, version),
            archive_size=size,
            pipeline={
                "commit": _sha("commit", product.slug, version)[:40],
                "build_url": f"{SCALE_BUILD_URL}/{n}",
            },
            token=cast.tokens.get(product.pk),
            state=state,
            created_at=moment,
            updated_at=moment + timedelta(minutes=rng.randint(1, 20)),
        )
        if state == DepositState.REJECTED:
            deposit.problem = rng.choice(_REJECTIONS)
        else:
            deposit.manifest = _manifest(deposit, rng, cast.recipient)
            deposit.manifest_sha256 = hashlib.sha256(canonical_json(deposit.manifest)).hexdigest()
            deposit.manifest_signature = sign_manifest(deposit.manifest, key)
            deposit.ciphertext_sha256 = _sha("sealed", product.slug, version)
            deposit.ciphertext_size = size + 200
            deposit.sealed_for = [cast.recipient]
            deposit.seal_attempt = secrets.token_hex(8)
        if state == DepositState.FAILED:
            deposit.failed_from, deposit.problem = rng.choice(_FAILURES)
            if deposit.failed_from == DepositState.VERIFIED:  # sealing failed: no sealed file
                deposit.ciphertext_sha256, deposit.ciphertext_size = "", None
                deposit.sealed_for, deposit.seal_attempt = [], ""
        if state == DepositState.ACKNOWLEDGED:
            deposit.updated_at = moment + timedelta(days=rng.randint(1, 5))
        deposits.append(deposit)
    with _dates_as_given(Deposit):
        _bulk(Deposit, deposits)
    return _deposit_rows(cast, deposits, key)


def _deposit_rows(cast: _Cast, deposits: list[Deposit], key: Any) -> list[_Event]:
    """The copies, the notary's receipts and the audit trail of the seeded deposits."""
    sites = [site["name"] for site in settings.ESCROW_SITES]
    copies, receipts, events = [], [], []
    for deposit in deposits:
        state, at = deposit.state, deposit.created_at
        token = cast.tokens.get(deposit.product_id)
        prefix = token.prefix if token is not None else "scale"
        events.append(
            _Event(
                at,
                "deposit.receive",
                deposit,
                actor_label=f"token:{prefix}",
                to_state="received",
                details={"version": deposit.version, "archive_sha256": deposit.archive_sha256},
            )
        )
        if state == DepositState.REJECTED:
            events.append(
                _Event(
                    at + timedelta(seconds=2),
                    "deposit.reject",
                    deposit,
                    from_state="received",
                    to_state="rejected",
                    reason=deposit.problem,
                )
            )
            continue
        reached = _PIPELINE
        if state == DepositState.FAILED:
            # It failed in ``failed_from``: the steps up to that state were done.
            reached = _PIPELINE[: _PIPELINE.index(DepositState(deposit.failed_from)) + 1]
        for step, target in enumerate(reached, 1):
            verb = {"verified": "verify", "sealed": "seal", "stored": "store"}[target]
            events.append(
                _Event(
                    at + timedelta(seconds=3 * step),
                    f"deposit.{verb}",
                    deposit,
                    from_state=_EARLIER[target],
                    to_state=target,
                )
            )
        if state == DepositState.FAILED:
            events.append(
                _Event(
                    at + timedelta(seconds=30),
                    "deposit.fail",
                    deposit,
                    from_state=deposit.failed_from,
                    to_state="failed",
                    reason=deposit.problem,
                )
            )
        # Stored: in the primary site (a replication that failed left it there too).
        if state == DepositState.STORED or deposit.failed_from == DepositState.STORED:
            in_sites = sites[:1]
        elif state == DepositState.FAILED:
            in_sites = []
        else:
            in_sites = sites
        for site in in_sites:
            for kind, sha, size in [
                (DepositCopy.Kind.SEALED, deposit.ciphertext_sha256, deposit.ciphertext_size),
                (DepositCopy.Kind.MANIFEST, deposit.manifest_sha256, 1700),
                (DepositCopy.Kind.SIGNATURE, _sha("signature", deposit.pk), 88),
            ]:
                verified = (
                    None
                    if len(in_sites) < len(sites) and kind == "sealed"
                    else at + timedelta(seconds=20)
                )
                copies.append(
                    {
                        "deposit_id": deposit.pk,
                        "site": site,
                        "kind": kind,
                        "key": deposit.object_key(kind),
                        "version_id": "",
                        "sha256": sha,
                        "size": size,
                        "verified_at": verified,
                    }
                )
        if state in (DepositState.REPLICATED, DepositState.ACKNOWLEDGED):
            events.append(
                _Event(
                    at + timedelta(seconds=25),
                    "deposit.replicate",
                    deposit,
                    from_state="stored",
                    to_state="replicated",
                )
            )
        if state == DepositState.ACKNOWLEDGED:
            when = deposit.updated_at.replace(microsecond=0)
            receipt = {
                "kind": "escrow-deposit-acknowledgement/v1",
                "deposit": deposit.pk,
                "product": deposit.product.slug,
                "version": deposit.version,
                "manifest_sha256": deposit.manifest_sha256,
                "ciphertext_sha256": deposit.ciphertext_sha256,
                "notary": cast.notary.email,
                "acknowledged_at": when.isoformat(timespec="seconds"),
            }
            receipts.append(
                DepositAcknowledgement(
                    deposit=deposit,
                    notary=cast.notary,
                    acknowledged_at=when,
                    manifest_sha256=deposit.manifest_sha256,
                    receipt=receipt,
                    signature=sign_manifest(receipt, key),
                )
            )
            events.append(
                _Event(
                    deposit.updated_at,
                    "deposit.acknowledge",
                    deposit,
                    actor=cast.notary,
                    from_state="replicated",
                    to_state="acknowledged",
                    details=receipt,
                )
            )
    _insert(DepositCopy, copies)
    _bulk(DepositAcknowledgement, receipts)
    return events


# --- Release claims -----------------------------------------------------------------

_FINAL_MIX = [
    (ClaimState.WITHDRAWN, 35),
    (ClaimState.REJECTED, 35),
    (ClaimState.APPROVED, 5),
    (ClaimState.RELEASED, 25),
]
# One open claim per organisation and product: the free pairs take these, in turn.
_OPEN_ORDER = [
    ClaimState.VENDOR_NOTIFIED,
    ClaimState.CONTESTED,
    ClaimState.UNDER_REVIEW,
    ClaimState.EVIDENCE_REQUESTED,
    ClaimState.UNCONTESTED,
    ClaimState.FILED,
]
_STATEMENTS = {
    ReleaseCondition.INSOLVENCY: "The vendor was declared bankrupt (court notice attached).",
    ReleaseCondition.CESSATION: "The vendor announced it stops trading at the end of the quarter.",
    ReleaseCondition.MAINTENANCE_FAILURE: (
        "A critical defect reported under our support agreement was not fixed within the "
        "cure period."
    ),
    ReleaseCondition.END_OF_LIFE: "The product reached its end of life without a successor.",
}
# The transitions from filing to each state, as (action, from, to, by whom).
_PATHS: dict[str, list[tuple[str, str, str, str]]] = {
    ClaimState.FILED: [],
    ClaimState.VENDOR_NOTIFIED: [("notify_vendor", "filed", "vendor_notified", "system")],
    ClaimState.CONTESTED: [
        ("notify_vendor", "filed", "vendor_notified", "system"),
        ("contest", "vendor_notified", "contested", "vendor"),
    ],
    ClaimState.UNCONTESTED: [
        ("notify_vendor", "filed", "vendor_notified", "system"),
        ("mark_uncontested", "vendor_notified", "uncontested", "system"),
    ],
}
_PATHS[ClaimState.UNDER_REVIEW] = [
    *_PATHS[ClaimState.UNCONTESTED],
    ("start_review", "uncontested", "under_review", "system"),
]
_PATHS[ClaimState.EVIDENCE_REQUESTED] = [
    *_PATHS[ClaimState.UNDER_REVIEW],
    ("request_evidence", "under_review", "evidence_requested", "notary"),
]
_PATHS[ClaimState.APPROVED] = [
    *_PATHS[ClaimState.UNDER_REVIEW],
    ("approve", "under_review", "approved", "notary"),
]
_PATHS[ClaimState.RELEASED] = [
    *_PATHS[ClaimState.APPROVED],
    ("release", "approved", "released", "system"),
]
_PATHS[ClaimState.REJECTED] = [
    *_PATHS[ClaimState.CONTESTED],
    ("start_review", "contested", "under_review", "system"),
    ("reject", "under_review", "rejected", "notary"),
]
_PATHS[ClaimState.WITHDRAWN] = [
    ("notify_vendor", "filed", "vendor_notified", "system"),
    ("withdraw", "vendor_notified", "withdrawn", "claimant"),
]


def _claims(cast: _Cast, count: int, rng: random.Random, now: datetime) -> list[_Event]:
    licences = [lic for lic in cast.licences if lic.customer_id in cast.users]
    if not licences or not count:
        return []
    taken = set(
        ReleaseClaim.objects.filter(state__in=OPEN_STATES).values_list("claimant_id", "product_id")
    )
    free = [lic for lic in licences if (lic.customer_id, lic.product_id) not in taken]
    weights = [4 if lic.customer.name.startswith("Northwind") else 1 for lic in licences]
    start = now - timedelta(days=HISTORY_DAYS)
    # Open claims are the newest: filed in the last weeks, still moving.
    open_count = min(len(free), count)
    moments = _moments(rng, count - open_count, start, now - timedelta(days=40))
    moments += _moments(rng, open_count, now - timedelta(days=30), now - timedelta(days=1))
    conditions = list(_STATEMENTS)
    claims = []
    for index, moment in enumerate(moments):
        if index >= count - open_count:
            slot = index - (count - open_count)
            licence, state = free[slot], _OPEN_ORDER[slot % len(_OPEN_ORDER)]
        else:
            licence = rng.choices(licences, weights=weights)[0]
            state = rng.choices([s for s, _ in _FINAL_MIX], weights=[w for _, w in _FINAL_MIX])[0]
        condition = rng.choice(conditions)
        claim = ReleaseClaim(
            claimant=licence.customer,
            filed_by=cast.users[licence.customer_id],
            product=licence.product,
            condition=condition,
            statement=_STATEMENTS[condition],
            state=state,
            created_at=moment,
            updated_at=moment + timedelta(days=len(_PATHS[state]) * 3),
        )
        if state != ClaimState.FILED:
            claim.contest_deadline = moment + timedelta(days=14)
        if any(step[0] == "contest" for step in _PATHS[state]):
            claim.vendor_statement = (
                "We maintain the product and disagree that the condition is met."
            )
        if state in (ClaimState.APPROVED, ClaimState.RELEASED, ClaimState.REJECTED):
            claim.decided_by = cast.notary
            claim.decided_at = moment + timedelta(days=len(_PATHS[state]) * 3 - 1)
            claim.decision_reasons = (
                "The evidence shows the condition is met."
                if state != ClaimState.REJECTED
                else "The vendor's evidence shows the product is still maintained."
            )
        claims.append(claim)
    with _dates_as_given(ReleaseClaim):
        _bulk(ReleaseClaim, claims)
    events = []
    for claim in claims:
        user = cast.users[claim.claimant_id]
        events.append(
            _Event(
                claim.created_at,
                "releaseclaim.file",
                claim,
                actor=user,
                to_state="filed",
                details={"evidence": []},
            )
        )
        for step, (verb, before, after, who) in enumerate(_PATHS[claim.state], 1):
            actor = {"notary": cast.notary, "claimant": user}.get(who)
            events.append(
                _Event(
                    claim.created_at + timedelta(days=3 * step - 3, minutes=step),
                    f"releaseclaim.{verb}",
                    claim,
                    actor=actor,
                    actor_label="vendor" if who == "vendor" else "",
                    from_state=before,
                    to_state=after,
                    reason=claim.decision_reasons if who == "notary" else "",
                )
            )
    return events


# --- Invoices, credit notes, payments ---------------------------------------------


def _invoices(cast: _Cast, count: int, rng: random.Random, now: datetime) -> list[_Event]:
    """``count`` invoices over the last three years: most paid, some credited, a few
    still open; numbered per year after what is issued, in the order of their dates."""
    if not count:
        return []
    today = now.date()
    customers = [c for c in cast.customers if c.pk in cast.users]
    weights = [8 if c.name.startswith("Northwind") else 3 for c in customers]
    by_customer = defaultdict(list)
    for held in cast.licences:
        by_customer[held.customer_id].append(held)
    # Each year's seeded invoices come after the year's last issued one (numbers follow dates).
    last_issued = dict(
        Invoice.objects.order_by()
        .values("year")
        .annotate(last=models.Max("issued_on"))
        .values_list("year", "last")
    )
    windows = []
    for year in range(today.year - 3, today.year + 1):
        first = max(
            date(year, 1, 1),
            last_issued.get(year, date(year, 1, 1)),
            today - timedelta(days=HISTORY_DAYS),
        )
        last = min(date(year, 12, 31), today - timedelta(days=1))
        if first <= last:
            windows.append((first, last))
    days = [
        first + timedelta(days=n) for first, last in windows for n in range((last - first).days + 1)
    ]
    issued = sorted(rng.choice(days) for _ in range(count))

    # (issued on, customer, licence, net amount, credited on or None, paid on or None)
    plan: list[
        tuple[date, Organisation, LicenceAgreement | None, Decimal, date | None, date | None]
    ]
    plan = []
    for on in issued:
        customer = rng.choices(customers, weights=weights)[0]
        licence = rng.choice(by_customer[customer.pk]) if by_customer[customer.pk] else None
        net = (
            (licence.annual_fee * Decimal("0.05")).quantize(CENT) if licence else Decimal("250.00")
        )
        roll = rng.random()
        paid_on = credited_on = None
        if roll < 0.85:
            paid_on = min(on + timedelta(days=rng.randint(1, 40)), today)
        elif roll < 0.93:
            # In the invoice's year: earlier in the year lie the numbers issued before.
            credited_on = min(on + timedelta(days=rng.randint(5, 60)), today, date(on.year, 12, 31))
        plan.append((on, customer, licence, net, credited_on, paid_on))

    counters = {row.year: row for row in InvoiceCounter.objects.select_for_update().all()}
    documents: list[tuple[date, int, str | None]]
    documents = [(on, index, None) for index, (on, *_rest) in enumerate(plan)]
    documents += [(credited, i, "credit") for i, (*_, credited, _) in enumerate(plan) if credited]
    documents.sort(key=lambda doc: (doc[0], doc[2] is not None, doc[1]))
    numbers: dict[tuple[int, str | None], tuple[int, int]] = {}
    for on, index, kind in documents:
        counter = counters.get(on.year)
        if counter is None:
            counter = counters[on.year] = InvoiceCounter.objects.create(year=on.year, last=0)
        counter.last += 1
        numbers[(index, kind)] = (on.year, counter.last)
    for counter in counters.values():
        counter.save(update_fields=["last"])

    vendor_details = _details(cast.vendor) | {
        "payment_details": settings.ESCROW_INVOICE_PAYMENT_DETAILS
    }
    invoices, notes, lines, payments, events = [], [], [], [], []
    corrected: dict[str, str] = {}  # credit note number: the invoice it credits
    for index, (on, customer, licence, net, _credited, _paid) in enumerate(plan):
        decision = vat_for(
            country=customer.country,
            vat_number=customer.vat_number,
            vendor_country=cast.vendor.country,
            domestic_rate=settings.ESCROW_DOMESTIC_VAT_RATE,
        )
        amounts = invoice_amounts(line_amounts=[net], rate=decision.rate)
        subscription = cast.subscriptions.get(licence.pk) if licence else None
        year, sequence = numbers[(index, None)]
        invoice = Invoice(
            number=f"{year}-{sequence:05d}",
            year=year,
            sequence=sequence,
            purpose=Invoice.Purpose.RENEWAL if subscription else Invoice.Purpose.DATA_EXPORT,
            customer=customer,
            vendor=cast.vendor,
            subscription=subscription,
            issued_on=on,
            due_on=on + timedelta(days=settings.ESCROW_PAYMENT_TERMS_DAYS),
            period_start=on if subscription else None,
            period_end=on + timedelta(days=365) if subscription else None,
            currency=licence.currency if licence else "EUR",
            net_amount=amounts.net,
            vat_treatment=decision.treatment,
            vat_rate=decision.rate,
            vat_amount=amounts.vat,
            total=amounts.total,
            vat_note=decision.note,
            customer_details=_details(customer),
            vendor_details=vendor_details,
            created_at=_at(on, 6),
        )
        invoices.append(invoice)
    with _dates_as_given(Invoice, Payment):
        _bulk(Invoice, invoices)
        for index, (invoice, row) in enumerate(zip(invoices, plan, strict=True)):
            customer, credited_on, paid_on = row[1], row[4], row[5]
            description = (
                f"Escrow subscription {invoice.period_start:%d %b %Y} "
                f"to {invoice.period_last_day:%d %b %Y}"
                if invoice.subscription_id
                else "Data export"
            )
            lines.append(
                InvoiceLine(
                    invoice=invoice, position=1, description=description, amount=invoice.net_amount
                )
            )
            details = {
                "number": invoice.number,
                "total": str(invoice.total),
                "currency": invoice.currency,
            }
            events.append(_Event(invoice.created_at, "invoice.issue", invoice, details=details))
            if paid_on:
                payments.append(
                    Payment(
                        invoice=invoice,
                        amount=invoice.total,
                        received_on=paid_on,
                        recorded_by=cast.staff,
                        created_at=_at(paid_on, 11),
                    )
                )
                events.append(
                    _Event(
                        _at(paid_on, 11),
                        "payment.record",
                        invoice,
                        actor=cast.staff,
                        details={"amount": str(invoice.total), "received_on": paid_on.isoformat()},
                    )
                )
            if credited_on:
                year, sequence = numbers[(index, "credit")]
                corrected[f"{year}-{sequence:05d}"] = invoice.number
                notes.append(
                    Invoice(
                        number=f"{year}-{sequence:05d}",
                        year=year,
                        sequence=sequence,
                        kind=Invoice.Kind.CREDIT_NOTE,
                        purpose=Invoice.Purpose.CORRECTION,
                        customer=customer,
                        vendor=cast.vendor,
                        subscription=invoice.subscription,
                        corrects=invoice,
                        issued_on=credited_on,
                        due_on=credited_on + timedelta(days=settings.ESCROW_PAYMENT_TERMS_DAYS),
                        currency=invoice.currency,
                        net_amount=-invoice.net_amount,
                        vat_treatment=invoice.vat_treatment,
                        vat_rate=invoice.vat_rate,
                        vat_amount=-invoice.vat_amount,
                        total=-invoice.total,
                        vat_note=invoice.vat_note,
                        customer_details=invoice.customer_details,
                        vendor_details=vendor_details,
                        created_at=_at(credited_on, 15),
                    )
                )
        _bulk(Invoice, notes)
        for note in notes:
            lines.append(
                InvoiceLine(
                    invoice=note,
                    position=1,
                    amount=note.net_amount,
                    description=f"Credit for invoice {corrected[note.number]}: cancelled",
                )
            )
            events.append(
                _Event(
                    note.created_at,
                    "credit_note.issue",
                    note,
                    actor=cast.staff,
                    details={
                        "number": note.number,
                        "total": str(note.total),
                        "currency": note.currency,
                    },
                )
            )
        _bulk(InvoiceLine, lines)
        _bulk(Payment, payments)
    return events


def _details(organisation: Organisation) -> dict[str, str]:
    return {
        "name": organisation.name,
        "address": organisation.address,
        "country": organisation.country,
        "vat_number": organisation.vat_number,
        "email": organisation.contact_email,
    }


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# --- Notifications ------------------------------------------------------------------

_NOTICES = [
    (Notification.Kind.INVOICE_ISSUED, "organisation", "Invoice {n}", 30),
    (Notification.Kind.PAYMENT_RECEIVED, "organisation", "Payment received for invoice {n}", 25),
    (Notification.Kind.DEPOSIT_ACKNOWLEDGED, "organisation", "A new deposit is in escrow", 25),
    (Notification.Kind.RELEASE_CLAIM_READY, "notaries", "Ready for review: release claim #{n}", 10),
    (Notification.Kind.RELEASE_CLAIM_FILED, "staff", "New release claim #{n}", 10),
]


def _notifications(cast: _Cast, count: int, rng: random.Random, now: datetime) -> None:
    customers = [c for c in cast.customers if c.pk in cast.users]
    weights = [6 if c.name.startswith("Northwind") else 1 for c in customers]
    start = now - timedelta(days=HISTORY_DAYS)
    rows = []
    for n, moment in enumerate(_moments(rng, count, start, now - timedelta(days=1)), 1):
        kind, audience, subject, _ = rng.choices(_NOTICES, weights=[w for *_, w in _NOTICES])[0]
        organisation = (
            rng.choices(customers, weights=weights)[0] if audience == "organisation" else None
        )
        sent = rng.random() < 0.97
        rows.append(
            Notification(
                kind=kind,
                audience=audience,
                organisation=organisation,
                subject=subject.format(n=n),
                body=f"{subject.format(n=n)}.\n\nThe details are in your portal.\n",
                created_at=moment,
                sent_at=moment + timedelta(seconds=30) if sent else None,
                attempts=1 if sent else 3,
                problem="" if sent else "The mail server refused the message: mailbox full.",
            )
        )
    with _dates_as_given(Notification):
        _bulk(Notification, rows)


# --- The audit chain ----------------------------------------------------------------


def _read_access(cast: _Cast, count: int, rng: random.Random, now: datetime) -> list[_Event]:
    """Entries that change nothing but are logged: certificates downloaded by customers
    and the notary's second factor. They fill the log up to the number asked for."""
    deposits = list(Deposit.objects.filter(state=DepositState.ACKNOWLEDGED).order_by("-pk")[:500])
    customers = list(cast.users.values())
    events = []
    start = now - timedelta(days=HISTORY_DAYS)
    for moment in _moments(rng, count, start, now - timedelta(days=1)):
        if deposits and rng.random() < 0.7:
            events.append(
                _Event(
                    moment,
                    "deposit.certificate_download",
                    rng.choice(deposits),
                    actor=rng.choice(customers),
                )
            )
        else:
            events.append(
                _Event(moment, "notary.second_factor_passed", cast.notary, actor=cast.notary)
            )
    return events


class _EntryRow(SimpleNamespace):
    """An audit entry's fields, hashed exactly as ``AuditEntry`` hashes itself."""

    content = AuditEntry.content
    compute_hash = AuditEntry.compute_hash


def _append_to_chain(events: list[_Event]) -> int:
    """Append the events, oldest first, to the hash chain and move its head: each
    entry's ``previous_hash`` is the hash of the entry before it, as ``audit_record``
    writes them one by one. The head is locked for the whole append."""
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
    sequence, previous = head.sequence, head.entry_hash
    rows = []
    for event in sorted(events, key=lambda event: event.at):
        sequence += 1
        target = event.target
        entry = _EntryRow(
            sequence=sequence,
            created_at=event.at.astimezone(UTC),
            actor_id=event.actor.pk if event.actor is not None else None,
            actor_label=event.actor_label or _label(event.actor),
            action=event.action,
            object_type=target._meta.label if target is not None else "",
            object_id=str(target.pk) if target is not None else "",
            from_state=event.from_state,
            to_state=event.to_state,
            reason=event.reason,
            details=event.details,
            previous_hash=previous,
        )
        entry.entry_hash = previous = entry.compute_hash()  # type: ignore[misc]
        rows.append(vars(entry))
    _insert(AuditEntry, rows)
    head.sequence, head.entry_hash = sequence, previous
    head.save(update_fields=["sequence", "entry_hash"])
    return len(rows)


def demo_scale(*, counts: ScaleCounts, now: datetime | None = None, seed: int = 14) -> ScaleResult:
    """Add ``counts`` of history to the demo data (which must exist: ``demo_load``).

    Runs in one transaction. A second run adds nothing: the deposits of the first
    (built by ``SCALE_BUILD_URL``) are found, and the result says so."""
    now = now or timezone.now()
    cast = _cast()
    earlier = Deposit.objects.filter(pipeline__build_url__startswith=SCALE_BUILD_URL).count()
    if earlier:
        return ScaleResult(
            skipped=f"The scaled demo data is there already ({earlier} seeded deposits): "
            "nothing added. Start from an empty database to seed it again."
        )
    rng = random.Random(seed)
    with transaction.atomic():
        events = _deposits(cast, counts.deposits, rng, now)
        # Every seeded deposit that has a manifest is in the transparency log, in order.
        log_append_many(
            list(
                Deposit.objects.filter(pipeline__build_url__startswith=SCALE_BUILD_URL)
                .exclude(manifest_sha256="")
                .order_by("created_at", "pk")
                .values_list("pk", "manifest_sha256")
            )
        )
        events += _claims(cast, counts.claims, rng, now)
        events += _invoices(cast, counts.invoices, rng, now)
        _notifications(cast, counts.notifications, rng, now)
        events += _read_access(cast, max(0, counts.audit_entries - len(events)), rng, now)
        written = _append_to_chain(events)
    actions: dict[str, int] = defaultdict(int)
    for event in events:
        actions[event.action] += 1
    return ScaleResult(
        added={
            "deposits": actions["deposit.receive"],
            "release claims": actions["releaseclaim.file"],
            "invoices": actions["invoice.issue"],
            "payments": actions["payment.record"],
            "credit notes": actions["credit_note.issue"],
            "notifications": counts.notifications,
            "audit entries": written,
        }
    )
