"""No deposit state without an owner: the sweeper takes over every expired lease.

Every in-flight deposit (``received``, ``verified``, ``sealed``, ``stored``) is
worked on under a lease (escrow.services.deposits). A process that dies (a
killed web worker, a lost Celery message) stops renewing it; once it has
expired, the sweeper, scheduled every minute (Celery beat in production,
``manage.py run_schedule``/``run_due`` in the embedded default), takes the
lease and applies the recovery rule of the state (docs/architecture.md,
"Deposit states, leases and recovery"):

- ``received``/``verified``: the plaintext lived only in the dead process, so
  the deposit fails with the reason (staff are mailed, the status URL shows it)
  and the pipeline's upload of the same archive starts it over;
- ``sealed``: the sealed file and manifest are in the primary site, so the
  store is queued again (any machine can do it); one sealed in an outbox of old
  fails, like the above;
- ``stored``: replication is queued again.

It also removes every intake file whose lease is not live: plaintext and
partial ciphertext of a process that died. Build verification's intake copies
(``deposit-<id>.<lease>.verify``, and the ``.scratch`` folder a build unpacks it
into) live under the verification's own lease: once it expires, the verification
is recorded ``interrupted`` ("not verified (interrupted)") and both are removed.
At start-up, where no query may be made (AppConfig.ready), every process removes
the intake files whose lease has expired by the marker the receiving process keeps
beside them, or for a verification's copy by the copy's own modification time
(``intake_orphans_remove``)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from escrow.models import Deposit, DepositState
from escrow.models.deposits import IN_FLIGHT_STATES
from escrow.services.deposits import (
    deposit_fail,
    deposit_lease_hand_on,
    deposit_lease_take,
    lease_owner_new,
    lease_token,
)
from records.queue import enqueue_on_commit
from verification.services import (
    live_verification_tokens,
    verification_copy_path,
    verification_interrupt,
    verifications_expired,
)

logger = logging.getLogger(__name__)
INTAKE_FILE = re.compile(
    r"^deposit-(\d+)\.([0-9a-f]{1,32})\.(plain|age\.part|lease|verify|scratch)$"
)
#: Build verification's: the intake copy and the folder the build unpacks it into.
VERIFY_SUFFIXES = (".verify", ".scratch")


@dataclass
class Sweep:
    """What one sweep did: deposits failed or resumed (``#id state: what``) and intake
    files removed."""

    failed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)


def _expired(now: datetime) -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)


def _recover(deposit: Deposit, *, now: datetime, sweep: Sweep) -> None:
    """Apply the recovery rule of the deposit's state, under the sweeper's lease."""
    previous = deposit.lease_owner or "nobody"
    state = deposit.state
    if not deposit_lease_take(deposit=deposit, owner=lease_owner_new(), now=now):
        return  # renewed or taken by another process since it was listed
    if state == DepositState.STORED:
        with transaction.atomic():
            deposit_lease_hand_on(
                deposit=deposit,
                task_name="escrow.deposit_replicate_copies",
                seconds=settings.ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS,
                now=now,
            )
            enqueue_on_commit("escrow.deposit_replicate_copies", deposit_id=deposit.pk)
        sweep.resumed.append(f"#{deposit.pk} stored: replication queued again")
        return
    if state == DepositState.SEALED and deposit.seal_attempt:
        with transaction.atomic():
            deposit_lease_hand_on(deposit=deposit, task_name="escrow.deposit_store_sealed", now=now)
            enqueue_on_commit("escrow.deposit_store_sealed", deposit_id=deposit.pk)
        sweep.resumed.append(f"#{deposit.pk} sealed: store queued again")
        return
    doing = {
        DepositState.RECEIVED: "receiving the upload",
        DepositState.VERIFIED: "checking and sealing the archive",
        DepositState.SEALED: "storing (its sealed file was only in that machine's outbox)",
    }[DepositState(state)]
    problem = (
        f"interrupted while {doing}: the process working on it ({previous}) stopped "
        "renewing its lease, and the source it held is gone. Upload the same archive "
        "again; that starts the deposit over."
    )
    deposit_fail(deposit=deposit, problem=problem, tell_staff=True)
    sweep.failed.append(f"#{deposit.pk} {state}: {problem}")


def _live_leases(ids: set[int], now: datetime) -> dict[int, str]:
    """The live lease token of each of these deposits that has one."""
    rows = Deposit.objects.filter(
        pk__in=ids, state__in=IN_FLIGHT_STATES, lease_expires_at__gt=now
    ).values_list("pk", "lease_owner")
    return {pk: lease_token(owner) for pk, owner in rows if owner}


def _sweep_intake(*, now: datetime, sweep: Sweep) -> None:
    """Remove every intake file whose deposit's lease is not the live one it is named by;
    a verification's copy and scratch folder may also be its verification's."""
    folder = settings.ESCROW_INTAKE_DIR
    if not folder.is_dir():
        return
    files = {}
    for path in folder.iterdir():
        match = INTAKE_FILE.match(path.name)
        if match and (path.is_file() or path.name.endswith(".scratch")):
            files[path] = (int(match.group(1)), match.group(2))
    ids = {deposit_id for deposit_id, _ in files.values()}
    live = _live_leases(ids, now)
    verifying = live_verification_tokens(ids, now=now)
    for path, (deposit_id, token) in sorted(files.items()):
        if live.get(deposit_id) == token:
            continue
        if path.name.endswith(VERIFY_SUFFIXES) and verifying.get(deposit_id) == token:
            continue
        _remove(path)
        sweep.removed.append(path.name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        # Imported here: the sandbox code stays out of the web workers' memory.
        from vault.build_sandbox import remove_tree

        remove_tree(path)
    else:
        path.unlink(missing_ok=True)


def _sweep_verifications(*, now: datetime, sweep: Sweep) -> None:
    """Interrupt every open build verification whose lease expired (its process died or
    its task was lost) and remove its intake copy and scratch folder: a crash never
    leaves source on disk, and the record says "not verified (interrupted)"."""
    for verification in verifications_expired(now=now):
        previous = verification.lease_owner or "nobody"
        try:
            verification_interrupt(
                verification=verification,
                problem=(
                    f"not verified (interrupted): the process verifying the build "
                    f"({previous}) stopped renewing its lease; its copy of the source was "
                    "removed. The next deposit is verified as usual."
                ),
                now=now,
            )
        except Exception:  # one record's failure must not stop the others
            logger.exception("interrupting build verification #%s failed", verification.pk)
            continue
        copy = verification_copy_path(verification.deposit_id, verification.lease_token)
        for path in (copy, copy.with_suffix(".scratch")):
            if path.exists():
                _remove(path)
                sweep.removed.append(path.name)
        sweep.interrupted.append(f"#{verification.pk} of deposit #{verification.deposit_id}")


def intake_orphans_remove(*, older_than: float) -> list[str]:
    """Remove the intake files of every lease that has expired, without asking the
    database: the start-up cleanup (escrow.apps), which runs before any query may be
    made. The receiving process writes its lease's expiry as the modification time of
    ``deposit-<id>.<lease>.lease`` whenever it renews it; files without that marker
    count as expired once not written for ``older_than`` seconds."""
    folder = settings.ESCROW_INTAKE_DIR
    if not folder.is_dir():
        return []
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in folder.iterdir():
        match = INTAKE_FILE.match(path.name)
        if match and (path.is_file() or path.name.endswith(".scratch")):
            groups.setdefault((match.group(1), match.group(2)), []).append(path)
    now = time.time()
    removed = []
    for paths in groups.values():
        try:
            markers = [path for path in paths if path.name.endswith(".lease")]
            copies = [path for path in paths if path.name.endswith(".verify")]
            if markers:
                expires = markers[0].stat().st_mtime
            elif copies:
                # A verification's intake copy carries its own lease's expiry.
                expires = copies[0].stat().st_mtime
            else:
                expires = max(path.stat().st_mtime for path in paths) + older_than
        except FileNotFoundError:  # its own process removed it meanwhile
            continue
        if expires > now:
            continue
        for path in sorted(paths):
            _remove(path)
            removed.append(path.name)
    if removed:
        logger.warning("start-up removed orphaned intake files: %s", sorted(removed))
    return sorted(removed)


def deposits_sweep(*, now: datetime) -> Sweep:
    """Take over every in-flight deposit whose lease expired by ``now`` and apply its
    state's recovery rule; then remove the intake files no live lease owns."""
    sweep = Sweep()
    stuck = Deposit.objects.filter(_expired(now), state__in=IN_FLIGHT_STATES).order_by("pk")
    for deposit in stuck.select_related("product"):
        try:
            _recover(deposit, now=now, sweep=sweep)
        except Exception:  # one deposit's failure must not stop the others
            logger.exception("sweeping deposit #%s failed", deposit.pk)
    _sweep_verifications(now=now, sweep=sweep)
    _sweep_intake(now=now, sweep=sweep)
    if sweep.failed or sweep.resumed or sweep.removed or sweep.interrupted:
        logger.warning(
            "deposit sweep: failed %s, resumed %s, removed %s, verifications interrupted %s",
            sweep.failed,
            sweep.resumed,
            sweep.removed,
            sweep.interrupted,
        )
    return sweep
