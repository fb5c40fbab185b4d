"""A replica that cannot be reached (issue 12, faults 2 and 3): the deposit is kept
honestly at one copy, staff hear of it, and the vault heals when the site is back.

The replica is an S3 site (moto) reached only through a TCP relay, which the test
cuts: connections are refused and open ones reset, as when the route drops.

- A short outage, with the real processes: gunicorn takes the deposit, ``manage.py
  vault reconcile`` and ``vault health`` run as an operator (or the schedule) runs them.
- An outage longer than the retry budget: the replication gives up, staff are
  mailed, and the clock is moved (``time-machine``) past the grace period and the
  next hourly reconcile instead of waiting for them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from escrow.models import Deposit
from tests import archives
from tests.faults.conftest import (
    STAFF_EMAIL,
    Answer,
    World,
    archive_of,
    assert_answer_truthful,
    missing_copies,
    plaintext_left,
    s3_site_behind,
)
from tests.faults.relay import Relay
from tests.s3server import MotoServer
from vault.sites import StorageSite


def _replica_behind_a_relay(
    world: World, moto_server: MotoServer, relays: Callable[[str], Relay]
) -> Relay:
    """Sites: the local-folder primary and an S3 replica reached through a relay."""
    link = relays(moto_server.endpoint_url)
    world.use_sites([world.sites[0], s3_site_behind("replica", moto_server, link)])
    return link


def test_a_cut_replica_keeps_the_deposit_honestly_stored_until_reconcile_copies_it(
    world: World, moto_server: MotoServer, relays: Callable[[str], Relay]
) -> None:
    link = _replica_behind_a_relay(world, moto_server, relays)
    # A third site after the cut one: a failing replica must not keep it from its copy.
    third = StorageSite(
        name="third",
        kind="local",
        path=str(world.tmp / "vault" / "third"),
        bucket="",
        endpoint_url="",
        region="",
        access_key_id="",
        secret_access_key="",
    )
    world.use_sites([*world.sites, third])
    server = world.gunicorn()
    link.cut()

    body = archive_of(256 * 1024, seed="cut replica")
    answer = world.put(server, "4.0.0", body)
    deposit = Deposit.objects.get(version="4.0.0")
    assert_answer_truthful(answer, deposit.state)
    # Safe in the primary, not replicated: the answer and the status URL say just that.
    assert (answer.status, answer.body["state"], deposit.state) == (202, "stored", "stored")
    assert world.status(server, deposit.pk)["state"] == "stored"
    assert {copy["site"] for copy in world.status(server, deposit.pk)["replicas"]} == {
        "primary",
        "third",
    }
    assert {line.split(":")[0] for line in missing_copies(deposit)} == {
        f"replica/{kind}" for kind in ("sealed", "manifest", "signature")
    }
    assert plaintext_left(world.intake) == []

    # Reconcile tells the truth while the replica is down: a problem naming the site,
    # and a non-zero exit. Health: still within the grace period, so pending, not an alarm.
    down = world.manage("vault", "reconcile")
    assert down.returncode != 0, down.stdout
    assert "replica" in down.stderr
    pending = world.manage("vault", "health")
    assert pending.returncode == 0, pending.stderr
    assert "pending" in pending.stdout and "4.0.0" in pending.stdout
    deposit.refresh_from_db()
    assert deposit.state == "stored"

    # The route comes back; the next reconcile copies the deposit and promotes it.
    link.restore()
    healed = world.manage("vault", "reconcile")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert "promoted to replicated" in healed.stdout
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert missing_copies(deposit) == []
    well = world.manage("vault", "health")
    assert well.returncode == 0, well.stdout + well.stderr
    assert "pending" not in well.stdout
    assert world.status(server, deposit.pk)["state"] == "replicated"


def _health(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``manage.py vault health`` in this process (whose clock the test moves): the exit
    status it would have from the shell, and what it wrote."""
    capsys.readouterr()
    try:
        call_command("vault", "health")
    except CommandError as error:  # the shell's non-zero exit, from call_command
        code = error.returncode
    else:
        code = 0
    written = capsys.readouterr()
    return code, written.out + written.err


def test_a_replica_down_beyond_the_retry_budget_is_mailed_to_staff_and_healed_later(
    world: World,
    moto_server: MotoServer,
    relays: Callable[[str], Relay],
    mailoutbox: list,
    capsys: pytest.CaptureFixture[str],
) -> None:
    link = _replica_behind_a_relay(world, moto_server, relays)
    link.cut()
    body = archive_of(128 * 1024, seed="long outage")
    pipeline = Client()
    response = pipeline.put(
        f"/api/v1/products/{world.product_slug}/deposits/5.0.0",
        data=body,
        content_type="application/octet-stream",
        headers={
            "Authorization": f"Bearer {world.secret}",
            "X-Archive-SHA256": archives.sha256(body),
        },
    )
    deposit = Deposit.objects.get(version="5.0.0")
    assert_answer_truthful(Answer(status=response.status_code, body=response.json()), deposit.state)
    assert deposit.state == "stored"

    # The replication task gave up (in-process it does not wait out its retries):
    # staff hear of it at once, naming the deposit and the site.
    gave_up = [m for m in mailoutbox if STAFF_EMAIL in m.to and "5.0.0" in m.body]
    assert gave_up, [m.subject for m in mailoutbox]
    assert "replica" in gave_up[0].body

    # Past the grace period and with the replica still down: health fails and names the
    # deposit; the scheduled check mails staff; the deposit is still only stored.
    later = timezone.now() + timedelta(seconds=settings.ESCROW_COPY_GRACE_SECONDS + 600)
    with time_machine.travel(later, tick=True):
        code, report = _health(capsys)
        assert code != 0, report
        assert "5.0.0" in report or f"#{deposit.pk}" in report, report
        mailoutbox.clear()
        call_command("run_due", stdout=StringIO())
        alerts = [m for m in mailoutbox if STAFF_EMAIL in m.to]
        assert any("5.0.0" in m.body or f"#{deposit.pk}" in m.body for m in alerts), [
            (m.subject, m.body[:300]) for m in alerts
        ]
        deposit.refresh_from_db()
        assert deposit.state == "stored"

    # The replica comes back; the next hourly run of the schedule heals it.
    link.restore()
    with time_machine.travel(later + timedelta(hours=1, minutes=5), tick=True):
        call_command("run_due", stdout=StringIO())
        deposit.refresh_from_db()
        assert deposit.state == "replicated", deposit.problem
        assert missing_copies(deposit) == []
        code, report = _health(capsys)
        assert code == 0, report
    assert plaintext_left(world.intake) == []
