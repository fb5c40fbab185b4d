"""Copying stored deposits from the primary site to every replica, and keeping them whole.

Copies are verified by SHA-256 on arrival (the site reads each one back) and
nothing is ever deleted: reconcile only adds what is missing, scrub only
replaces a damaged copy with a good one and keeps the damaged one aside."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from escrow.models import Deposit, DepositCopy, DepositState
from escrow.services.deposits import deposit_replicate
from records.models import StoredFile
from vault.site_clients import all_sites
from vault.sites import SiteError, StorageSiteClient

STORED_STATES = [DepositState.STORED, DepositState.REPLICATED, DepositState.ACKNOWLEDGED]


def _expected(deposit: Deposit) -> dict[str, DepositCopy]:
    """The verified primary copies: what every other site must hold byte for byte."""
    primary = all_sites()[0].name
    return {copy.kind: copy for copy in deposit.copies.filter(site=primary)}


def _copy_between(
    source: StorageSiteClient, target: StorageSiteClient, deposit: Deposit, reference: DepositCopy
) -> DepositCopy:
    with source.open(reference.key) as stream:
        stored = target.put(reference.key, stream, sha256=reference.sha256, size=reference.size)
    copy, _ = DepositCopy.objects.update_or_create(
        deposit=deposit,
        site=target.name,
        kind=reference.kind,
        defaults={
            "key": reference.key,
            "version_id": stored.version_id or "",
            "sha256": reference.sha256,
            "size": reference.size,
            "verified_at": timezone.now(),
        },
    )
    return copy


def deposit_replicate_copies(*, deposit: Deposit) -> Deposit:
    """Copy every stored part of a deposit to every replica site, then mark it replicated.

    Raises ``SiteError`` when a site fails (the Celery task retries transient ones)."""
    sites = all_sites()
    primary, replicas = sites[0], sites[1:]
    expected = _expected(deposit)
    if set(expected) != set(DepositCopy.Kind.values):
        raise SiteError(
            f"{deposit} has no complete verified copy in {primary.name}", site=primary.name
        )
    for replica in replicas:
        for reference in expected.values():
            _copy_between(primary, replica, deposit, reference)
    with transaction.atomic():
        return deposit_replicate(deposit=deposit)


@dataclass
class SiteRepairs:
    copied: list[str] = field(default_factory=list)
    healed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Expected:
    """An object every site must hold, byte for byte."""

    key: str
    sha256: str
    size: int
    deposit: Deposit | None = None
    kind: str = ""


def _everything_stored() -> Iterator[Expected]:
    for deposit in Deposit.objects.filter(state__in=STORED_STATES).iterator():
        for reference in _expected(deposit).values():
            yield Expected(reference.key, reference.sha256, reference.size, deposit, reference.kind)
    for stored in StoredFile.objects.iterator():
        yield Expected(stored.key, stored.sha256, stored.size)


def _good_source(
    sites: list[StorageSiteClient], expected: Expected, exclude: StorageSiteClient
) -> StorageSiteClient | None:
    for site in sites:
        if site is exclude:
            continue
        try:
            if site.hash(expected.key) == expected.sha256:
                return site
        except SiteError:
            continue
    return None


def _restore(source: StorageSiteClient, target: StorageSiteClient, expected: Expected) -> None:
    with source.open(expected.key) as stream:
        stored = target.put(expected.key, stream, sha256=expected.sha256, size=expected.size)
    if expected.deposit is not None:
        DepositCopy.objects.update_or_create(
            deposit=expected.deposit,
            site=target.name,
            kind=expected.kind,
            defaults={
                "key": expected.key,
                "version_id": stored.version_id or "",
                "sha256": expected.sha256,
                "size": expected.size,
                "verified_at": timezone.now(),
            },
        )


def vault_reconcile() -> SiteRepairs:
    """Copy every stored object that a site lacks from a site holding a good copy, and
    mark deposits replicated once every site holds every part."""
    repairs = SiteRepairs()
    sites = all_sites()
    for expected in _everything_stored():
        for site in sites:
            try:
                if site.stat(expected.key) is not None:
                    continue
                source = _good_source(sites, expected, exclude=site)
                if source is None:
                    repairs.problems.append(f"{expected.key}: no good copy anywhere")
                    continue
                _restore(source, site, expected)
                repairs.copied.append(f"{site.name}:{expected.key}")
            except SiteError as error:
                repairs.problems.append(f"{site.name}:{expected.key}: {error}")
    if not repairs.problems:
        _finish_replication(sites)
    return repairs


def _finish_replication(sites: list[StorageSiteClient]) -> None:
    """A stored deposit whose replication task gave up is replicated once reconcile has
    verified a copy of every part in every site."""
    names = {site.name for site in sites}
    for deposit in Deposit.objects.filter(state=DepositState.STORED):
        copies = set(deposit.copies.values_list("site", "kind"))
        if {(name, kind) for name in names for kind in DepositCopy.Kind.values} <= copies:
            deposit_replicate(deposit=deposit)


def vault_scrub() -> SiteRepairs:
    """Re-hash every stored copy in every site; heal a damaged copy from a good one."""
    repairs = SiteRepairs()
    sites = all_sites()
    for expected in _everything_stored():
        for site in sites:
            try:
                if site.stat(expected.key) is None:
                    repairs.problems.append(
                        f"{site.name}:{expected.key}: missing (vault reconcile copies it)"
                    )
                    continue
                if site.hash(expected.key) == expected.sha256:
                    continue
                source = _good_source(sites, expected, exclude=site)
                if source is None:
                    repairs.problems.append(
                        f"{site.name}:{expected.key}: damaged, and no good copy anywhere"
                    )
                    continue
                with source.open(expected.key) as stream:
                    site.replace_corrupt(
                        expected.key, stream, sha256=expected.sha256, size=expected.size
                    )
                repairs.healed.append(f"{site.name}:{expected.key}")
            except SiteError as error:
                repairs.problems.append(f"{site.name}:{expected.key}: {error}")
    return repairs
