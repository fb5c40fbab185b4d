"""Is every deposit kept where it should be? The check behind ``manage.py vault health``
and the scheduled ``escrow.vault_health_check`` that mails staff.

A deposit is unhealthy when no site holds a verified copy of all of it, or
when fewer sites than are configured hold one for longer than
``ESCROW_COPY_GRACE_SECONDS`` (counted from its first verified copy, which is
when it was stored): replication and the hourly reconcile have had their
chance, so a person must look. Within the grace period an incomplete deposit
is only *pending*: replication is normal work, not an alarm.

The check reads the ``DepositCopy`` records only (what replication, reconcile
and scrub last verified), so it is cheap enough to run often and works while
a site is down, which is exactly when it matters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db.models import Q
from django.utils import timezone

from escrow.models import Deposit, DepositCopy
from escrow.services.replication import (
    MISSING,
    STORED_STATES,
    VERIFIED,
    WRITTEN,
    deposit_copy_status,
)
from vault.site_clients import all_sites


@dataclass
class VaultHealth:
    """The result of one check: ``problems`` need a person, ``pending`` are within grace."""

    checked: int = 0
    sites: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def report(self) -> str:
        """The text printed by ``vault health`` and mailed to staff."""
        lines = [
            f"{self.checked} deposit(s) checked against {len(self.sites)} site(s) "
            f"({', '.join(self.sites)}): {len(self.problems)} problem(s), "
            f"{len(self.pending)} still within the grace period.",
            *(f"problem: {line}" for line in self.problems),
            *(f"pending: {line}" for line in self.pending),
        ]
        return "\n".join(lines)


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def vault_health(*, now: datetime | None = None) -> VaultHealth:
    """Check every deposit that is (or was) stored against the configured sites."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.ESCROW_COPY_GRACE_SECONDS)
    health = VaultHealth(sites=[site.name for site in all_sites()])
    deposits = (
        Deposit.objects.filter(
            Q(pk__in=DepositCopy.objects.values("deposit")) | Q(state__in=STORED_STATES)
        )
        .select_related("product")
        .prefetch_related("copies")
        .order_by("pk")
    )
    for deposit in deposits.iterator(chunk_size=200):
        health.checked += 1
        status = deposit_copy_status(deposit=deposit, sites=health.sites)
        verified = [site for site, copies in status.items() if copies == VERIFIED]
        written = [site for site, copies in status.items() if copies == WRITTEN]
        missing = [site for site, copies in status.items() if copies == MISSING]
        name = f"deposit #{deposit.pk} ({deposit}, {deposit.state})"
        if not verified and not written:
            health.problems.append(f"{name}: no verified copy in any site")
            continue
        if not missing and not written:
            continue
        checked = [copy.verified_at for copy in deposit.copies.all() if copy.verified_at]
        since = min(checked) if checked else deposit.updated_at
        unproven = f", written but not yet read back in {', '.join(written)}" if written else ""
        line = (
            f"{name}: verified copies in {len(verified)} of {len(status)} sites{unproven}"
            + (f", missing in {', '.join(missing)}" if missing else "")
            + f", for {_age((now - since).total_seconds())}"
        )
        (health.problems if now - since > grace else health.pending).append(line)
    return health


def vault_health_check(*, now: datetime | None = None) -> VaultHealth:
    """Run the check and mail staff the report when any deposit is unhealthy."""
    health = vault_health(now=now)
    if not health.healthy:
        mail_admins(
            f"Vault health: {len(health.problems)} deposit(s) without enough verified copies",
            health.report() + "\n\nWhat to do: docs/operations.md, 'Vault health'.",
        )
    return health
