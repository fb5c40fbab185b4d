"""Copying stored deposits from the primary site to every replica, and keeping them whole.

Copies are verified by SHA-256 on arrival (the site reads each one back) and
nothing is ever deleted: reconcile only adds what is missing, scrub only
replaces a damaged copy with a good one and keeps the damaged one aside.

Replication never gives up silently. Each site is handled on its own, so one
failing replica never keeps a copy from the next; every verified copy is
recorded as a ``DepositCopy`` row, which is where a deposit's per-site copy
status comes from (``deposit_copy_status``); reconcile and scrub walk every
deposit that has any stored object, whatever its state, record the copies they
find present and verified, and promote each deposit on its own as soon as
every site holds all of it. When the replication task stops retrying the
deposit stays ``stored`` (the hourly reconcile carries on) and staff are
mailed which sites lack it and why; ``vault health`` keeps alerting until it
is whole."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from django.core.mail import mail_admins
from django.db.models import Q, QuerySet
from django.utils import timezone

from escrow.models import Deposit, DepositCopy, DepositState
from escrow.services.deposits import (
    DAMAGED_IN_PRIMARY,
    deposit_fail,
    deposit_replicate,
    deposit_retry,
)
from records.models import AuditEntry, StoredFile
from records.services.audit import audit_record
from records.services.transitions import TransitionRefused
from vault.site_clients import all_sites
from vault.sites import SiteError, StorageSiteClient

STORED_STATES = [DepositState.STORED, DepositState.REPLICATED, DepositState.ACKNOWLEDGED]

CopyStatus = Literal["verified", "written", "missing"]
VERIFIED: CopyStatus = "verified"
WRITTEN: CopyStatus = "written"
MISSING: CopyStatus = "missing"


class PrimaryDamaged(Exception):
    """A copy in the primary site does not hold the bytes written to it: read back, its
    hash differs from the one computed as it was written. Nothing can be copied from it."""


def deposit_copy_status(
    *, deposit: Deposit, sites: Iterable[str] | None = None
) -> dict[str, CopyStatus]:
    """Per site (every configured one unless named): ``"verified"`` when the site has a
    copy of every part of the deposit (a ``DepositCopy`` row for each kind), each read
    back and checked; ``"written"`` when it has them all but one is not read back yet
    (the sealed file the intake has just written); else ``"missing"``. The rows are
    the record; reading them touches no site."""
    names = list(sites) if sites is not None else [site.name for site in all_sites()]
    kinds: dict[str, set[str]] = defaultdict(set)
    proven: dict[str, bool] = defaultdict(lambda: True)
    for copy in deposit.copies.all():  # uses a prefetch when the caller made one
        kinds[copy.site].add(copy.kind)
        proven[copy.site] = proven[copy.site] and copy.verified_at is not None
    every = set(DepositCopy.Kind.values)

    def status(name: str) -> CopyStatus:
        if kinds[name] < every:
            return MISSING
        return VERIFIED if proven[name] else WRITTEN

    return {name: status(name) for name in names}


def _expected(deposit: Deposit) -> dict[str, DepositCopy]:
    """The verified primary copies: what every other site must hold byte for byte."""
    primary = all_sites()[0].name
    return {copy.kind: copy for copy in deposit.copies.filter(site=primary)}


def _references(deposit: Deposit, primary: str) -> dict[str, DepositCopy]:
    """One verified copy of each stored part, the primary's where it has one: what every
    site must hold. A part the primary lost is still known from a replica's record."""
    references: dict[str, DepositCopy] = {}
    for copy in sorted(deposit.copies.all(), key=lambda copy: (copy.site != primary, copy.site)):
        references.setdefault(copy.kind, copy)
    return references


def _record(
    deposit: Deposit, site: str, reference: DepositCopy | Expected, version_id: str | None
) -> DepositCopy:
    """Record that ``site`` holds a verified copy of one part (after it was read back)."""
    copy, _ = DepositCopy.objects.update_or_create(
        deposit=deposit,
        site=site,
        kind=reference.kind,
        defaults={
            "key": reference.key,
            "version_id": version_id or "",
            "sha256": reference.sha256,
            "size": reference.size,
            "verified_at": timezone.now(),
        },
    )
    return copy


def _copy_between(
    source: StorageSiteClient, target: StorageSiteClient, deposit: Deposit, reference: DepositCopy
) -> DepositCopy:
    """Copy one part; the target checks the source's bytes against the recorded hash as
    they arrive, so a copy of a primary copy not yet read back proves that copy too."""
    try:
        with source.open(reference.key) as stream:
            stored = target.put(reference.key, stream, sha256=reference.sha256, size=reference.size)
    except SiteError:
        if reference.verified_at is None:
            _prove(source, deposit, reference)  # raises PrimaryDamaged if that was the cause
        raise
    if reference.verified_at is None:
        _proven(deposit, source.name, reference)
    return _record(deposit, target.name, reference, stored.version_id)


def _prove(site: StorageSiteClient, deposit: Deposit, copy: DepositCopy) -> None:
    """Read back a copy written in one pass (never read back yet) and record it verified;
    ``PrimaryDamaged`` when its bytes are not the ones written."""
    actual = site.hash(copy.key)
    if actual != copy.sha256:
        raise PrimaryDamaged(
            f"{copy.key} in {site.name} reads back with SHA-256 {actual}, not {copy.sha256} "
            "as written: the copy is damaged"
        )
    _proven(deposit, site.name, copy)


def _proven(deposit: Deposit, site: str, copy: DepositCopy) -> None:
    """Record that ``copy`` was read back and matched (its row and this instance)."""
    copy.verified_at = _record(deposit, site, copy, copy.version_id).verified_at


def _combined(errors: list[SiteError]) -> SiteError:
    """One error for several failed sites; transient if any is, so the task retries."""
    if len(errors) == 1:
        return errors[0]
    return SiteError(
        "; ".join(str(error) for error in errors),
        site=", ".join(error.site for error in errors),
        transient=any(error.transient for error in errors),
    )


def _promote(deposit: Deposit, sites: list[str]) -> bool:
    """Mark the deposit replicated once every site holds a verified copy of all of it.

    A deposit whose replication was failed (by an older release, or by staff) is
    retried back to ``stored`` first. Returns whether this call promoted it."""
    deposit.refresh_from_db()
    status = deposit_copy_status(deposit=deposit, sites=sites)
    if any(copies != VERIFIED for copies in status.values()):
        return False
    try:
        if deposit.state == DepositState.FAILED and deposit.failed_from == DepositState.STORED:
            deposit_retry(deposit=deposit, actor=None, reason="every site holds a verified copy")
            deposit.refresh_from_db()
        if deposit.state != DepositState.STORED:
            return False
        deposit_replicate(deposit=deposit)
    except TransitionRefused:
        # Someone else (the replication task) moved it meanwhile; that is theirs to report.
        deposit.refresh_from_db()
        return False
    return True


def deposit_replicate_copies(*, deposit: Deposit) -> Deposit:
    """Copy every stored part of a deposit to every replica site, then mark it replicated.

    Each replica is tried on its own (one failing never blocks the next) and a
    part a site already holds is not copied again, so a retry does only what is
    missing. Raises ``SiteError`` naming every site that failed, transient if any
    failure was (the Celery task retries transient ones).

    This is also where the sealed file the intake wrote in one pass is read back for
    the first time: copying it proves it (the replica checks every byte against the
    hash computed as it was written), and a part no replica needed is read back here.
    A primary copy that reads back wrong fails the deposit, naming the damage: its
    bytes are lost, so the pipeline must upload the same archive again."""
    sites = all_sites()
    primary, replicas = sites[0], sites[1:]
    expected = _expected(deposit)
    if set(expected) != set(DepositCopy.Kind.values):
        raise SiteError(
            f"{deposit} has no complete verified copy in {primary.name}", site=primary.name
        )
    held = set(deposit.copies.values_list("site", "kind"))
    errors: list[SiteError] = []
    try:
        for replica in replicas:
            try:
                for reference in expected.values():
                    if (replica.name, reference.kind) not in held:
                        _copy_between(primary, replica, deposit, reference)
            except SiteError as error:
                errors.append(error)
        for reference in expected.values():
            if reference.verified_at is None:
                _prove(primary, deposit, reference)
    except PrimaryDamaged as damaged:
        return deposit_fail(
            deposit=deposit,
            problem=(
                f"{DAMAGED_IN_PRIMARY}: {damaged}. The sealed bytes are lost; upload the "
                "same archive again."
            ),
            tell_staff=True,
        )
    if errors:
        raise _combined(errors)
    _promote(deposit, [site.name for site in sites])
    return deposit


_GAVE_UP = "deposit.replication_gave_up"


def deposit_replication_gave_up(*, deposit: Deposit, reason: str) -> list[str]:
    """The replication task stopped retrying: tell staff now which sites lack the deposit.

    The deposit stays ``stored``, not ``failed``: it is safe in the primary, and
    from here the hourly ``vault reconcile`` copies it once the sites are back
    (``vault health`` alerts if that takes longer than ESCROW_COPY_GRACE_SECONDS).
    The give-up is written to the audit log; a repeated give-up about the same sites
    (replication queued again during one long outage) is not mailed twice. Returns
    the sites still missing it."""
    missing = [
        name for name, status in deposit_copy_status(deposit=deposit).items() if status != VERIFIED
    ]
    if not missing:
        return []
    earlier = (
        AuditEntry.objects.filter(
            action=_GAVE_UP, object_type=Deposit._meta.label, object_id=str(deposit.pk)
        )
        .order_by("-sequence")
        .first()
    )
    if earlier is not None and earlier.details.get("missing_sites") == missing:
        # The sweeper queues replication again after a long outage; staff were told about
        # these very sites already, and `vault health` keeps reminding them hourly.
        return missing
    audit_record(
        action=_GAVE_UP,
        target=deposit,
        reason=reason,
        details={"missing_sites": missing},
    )
    mail_admins(
        f"Replication of deposit #{deposit.pk} ({deposit}) gave up",
        f"Deposit #{deposit.pk} of {deposit.product.name} {deposit.version} is {deposit.state}, "
        f"but these sites hold no verified copy of it: {', '.join(missing)}.\n\n"
        f"Reason: {reason}\n\n"
        "The deposit stays stored in the primary site. The hourly vault reconcile copies it "
        "once the sites are reachable again; `manage.py vault health` lists it until then. "
        "If the reason is not an outage (a refused or conflicting object), fix the site "
        "first: see docs/operations.md, 'Replication gave up'.",
    )
    return missing


@dataclass
class SiteRepairs:
    """What a reconcile or scrub did. ``recorded``: copies found present and verified that
    had no record yet; ``promoted``: deposits marked replicated by this run."""

    copied: list[str] = field(default_factory=list)
    healed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    """An object every site must hold, byte for byte."""

    key: str
    sha256: str
    size: int
    deposit: Deposit | None = None
    kind: str = ""


def _deposits_in_the_vault() -> QuerySet[Deposit]:
    """Every deposit with any stored object, whatever its state (failed ones included)."""
    return (
        Deposit.objects.filter(
            Q(pk__in=DepositCopy.objects.values("deposit")) | Q(state__in=STORED_STATES)
        )
        .select_related("product")
        .prefetch_related("copies")
        .order_by("pk")
    )


_Where = tuple[str, str]  # (site, kind)


class _Pass:
    """One reconcile or scrub run over every site, each site handled on its own.

    A site that failed with a transient error (down, timing out) is not asked
    again in this run, so one dead site costs one timeout, not one per object,
    and never keeps the other sites from being repaired."""

    def __init__(self) -> None:
        self.sites = all_sites()
        self.names = [site.name for site in self.sites]
        self.repairs = SiteRepairs()
        self._down: dict[str, SiteError] = {}

    def usable(self, site: StorageSiteClient, key: str) -> bool:
        if site.name not in self._down:
            return True
        self.repairs.problems.append(
            f"{site.name}:{key}: not checked, the site is unavailable ({self._down[site.name]})"
        )
        return False

    def failed(self, site: StorageSiteClient, key: str, error: SiteError) -> None:
        self.repairs.problems.append(f"{site.name}:{key}: {error}")
        if error.transient and error.site in self.names:
            self._down[error.site] = error

    def good_source(
        self, expected: Expected, exclude: StorageSiteClient
    ) -> StorageSiteClient | None:
        for site in self.sites:
            if site is exclude or site.name in self._down:
                continue
            try:
                if site.hash(expected.key) == expected.sha256:
                    return site
            except SiteError:
                continue
        return None

    def deposits(self) -> Iterator[tuple[Deposit, list[Expected], dict[_Where, DepositCopy]]]:
        primary = self.names[0]
        for deposit in _deposits_in_the_vault().iterator(chunk_size=100):
            references = _references(deposit, primary)
            expected = [
                Expected(copy.key, copy.sha256, copy.size, deposit, copy.kind)
                for copy in references.values()
            ]
            rows = {(copy.site, copy.kind): copy for copy in deposit.copies.all()}
            yield deposit, expected, rows

    def promote(self, deposit: Deposit) -> None:
        if _promote(deposit, self.names):
            self.repairs.promoted.append(f"deposit #{deposit.pk} ({deposit})")


def _stored_files() -> Iterator[Expected]:
    for stored in StoredFile.objects.iterator():
        yield Expected(stored.key, stored.sha256, stored.size)


def vault_reconcile() -> SiteRepairs:
    """Copy every stored object that a site lacks from a site holding a good copy, record
    copies found present but unrecorded (after hashing them), and mark each deposit
    replicated as soon as every site holds every part of it."""
    return _over_every_object(_reconcile_one)


_OneObject = Callable[["_Pass", StorageSiteClient, Expected, "DepositCopy | None"], None]


def _over_every_object(each: _OneObject) -> SiteRepairs:
    """One pass of ``each`` over every part of every deposit and every stored file, in
    every site; each deposit is promoted on its own as soon as its parts are done."""
    run = _Pass()
    for deposit, expected_parts, rows in run.deposits():
        for expected in expected_parts:
            for site in run.sites:
                each(run, site, expected, rows.get((site.name, expected.kind)))
        run.promote(deposit)
    for expected in _stored_files():
        for site in run.sites:
            each(run, site, expected, None)
    return run.repairs


def _reconcile_one(
    run: _Pass, site: StorageSiteClient, expected: Expected, row: DepositCopy | None
) -> None:
    if not run.usable(site, expected.key):
        return
    label = f"{site.name}:{expected.key}"
    try:
        present = site.stat(expected.key)
        if present is not None:
            if expected.deposit is None:
                return
            if row is not None and row.sha256 == expected.sha256:
                if row.verified_at is None:
                    _prove_in_pass(run, site, expected.deposit, row)
                return
            # There, but never recorded (a copy whose record was lost, or made by hand):
            # hashed before it counts, so a damaged object is never recorded as a copy.
            if site.hash(expected.key) == expected.sha256:
                _record(expected.deposit, site.name, expected, present.version_id)
                run.repairs.recorded.append(label)
            else:
                run.repairs.problems.append(f"{label}: damaged (vault scrub heals it)")
            return
        source = run.good_source(expected, exclude=site)
        if source is None:
            run.repairs.problems.append(f"{expected.key}: no good copy anywhere")
            return
        _restore(source, site, expected)
        run.repairs.copied.append(label)
    except SiteError as error:
        run.failed(site, expected.key, error)


def _prove_in_pass(run: _Pass, site: StorageSiteClient, deposit: Deposit, row: DepositCopy) -> None:
    """Read back a copy written in one pass whose replication never ran."""
    try:
        _prove(site, deposit, row)
    except PrimaryDamaged as damaged:
        run.repairs.problems.append(f"{site.name}:{row.key}: {damaged}")


def _restore(source: StorageSiteClient, target: StorageSiteClient, expected: Expected) -> None:
    with source.open(expected.key) as stream:
        stored = target.put(expected.key, stream, sha256=expected.sha256, size=expected.size)
    if expected.deposit is not None:
        _record(expected.deposit, target.name, expected, stored.version_id)


def vault_scrub() -> SiteRepairs:
    """Re-hash every stored copy in every site; heal a damaged copy from a good one.

    On a versioned site the current version must be the recorded one: a newer
    version is hashed like any copy (healed when damaged) and the version now in
    place is recorded, and reported, either way. Copies found good but never
    recorded are recorded, and each deposit whose every site now holds all of
    it is marked replicated."""
    return _over_every_object(_scrub_one)


def _scrub_one(
    run: _Pass, site: StorageSiteClient, expected: Expected, row: DepositCopy | None
) -> None:
    if not run.usable(site, expected.key):
        return
    label = f"{site.name}:{expected.key}"
    try:
        present = site.stat(expected.key)
        if present is None:
            run.repairs.problems.append(f"{label}: missing (vault reconcile copies it)")
            return
        replaced = (
            row is not None
            and bool(row.version_id)
            and present.version_id is not None
            and present.version_id != row.version_id
        )
        if site.hash(expected.key) == expected.sha256:
            if expected.deposit is None:
                return
            if row is None or row.verified_at is None:
                _record(expected.deposit, site.name, expected, present.version_id)
                run.repairs.recorded.append(label)
            elif replaced:
                _record(expected.deposit, site.name, expected, present.version_id)
                run.repairs.healed.append(
                    f"{label}: the recorded version {row.version_id} was replaced by version "
                    f"{present.version_id}, whose bytes are good; recorded that version"
                )
            return
        source = run.good_source(expected, exclude=site)
        if source is None:
            run.repairs.problems.append(f"{label}: damaged, and no good copy anywhere")
            return
        with source.open(expected.key) as stream:
            healed = site.replace_corrupt(
                expected.key, stream, sha256=expected.sha256, size=expected.size
            )
        if expected.deposit is not None:
            _record(expected.deposit, site.name, expected, healed.stored.version_id)
        if replaced:
            run.repairs.healed.append(
                f"{label}: the recorded version {row.version_id if row else ''} was replaced "
                f"by damaged version {present.version_id}; healed as version "
                f"{healed.stored.version_id}"
            )
        else:
            run.repairs.healed.append(label)
    except SiteError as error:
        run.failed(site, expected.key, error)
