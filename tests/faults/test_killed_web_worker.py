"""SIGKILL to a real gunicorn worker while it streams, seals or stores an upload (issue 12,
fault 1): the deposit must not stay stuck, the pipeline must not be told it succeeded,
and no plaintext may outlive the request.

The deposit goes through the API of a real gunicorn (one sync worker, so the one to
kill is known) to a primary S3 site (moto, behind a relay that can be slowed so the
store takes long enough to be interrupted) and a local-folder replica. After the
kill, the dead worker's lease runs out (the processes run with a lease of a few
seconds), ``manage.py run_due`` runs the schedule as beat would, and the pipeline
uploads the same archive again, as ``curl --retry`` does."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from escrow.models import Deposit
from tests.faults.conftest import (
    LEASE_SECONDS,
    SETTLED_STATES,
    World,
    archive_of,
    assert_answer_truthful,
    kill_when,
    missing_copies,
    plaintext_left,
    replicated_after_answer,
    s3_site_behind,
    staff_mails_about,
    wait_for_lease_to_expire,
)
from tests.faults.relay import Relay
from tests.s3server import MotoServer

ARCHIVE_BYTES = 4 * 1024 * 1024
# Slow enough that each phase lasts about a second, so the kill lands in it, and fast
# enough that no step between two lease renewals outlasts the (short) test lease.
CLIENT_RATE = 3 * 1024 * 1024
SITE_RATE = 4 * 1024 * 1024


@pytest.mark.parametrize("phase", ["received", "verified", "sealed"])
def test_a_killed_web_worker_leaves_no_stuck_deposit_no_plaintext_and_no_false_success(
    world: World,
    moto_server: MotoServer,
    relays: Callable[[str], Relay],
    phase: str,
) -> None:
    primary_link = relays(moto_server.endpoint_url)
    world.use_sites([s3_site_behind("primary", moto_server, primary_link), world.sites[1]])
    version = f"3.0.{['received', 'verified', 'sealed'].index(phase)}"
    body = archive_of(ARCHIVE_BYTES, seed=phase)
    server = world.gunicorn()

    # 1. The fault: SIGKILL the worker the moment the deposit is in the phase.
    if phase != "received":
        primary_link.throttle(SITE_RATE)
    upload = world.upload(server, version, body, rate=CLIENT_RATE if phase == "received" else None)

    def in_phase() -> bool:
        deposit = Deposit.objects.filter(version=version).first()
        if deposit is None or deposit.state != phase:
            return False
        return phase != "received" or upload.sent > len(body) // 2

    killed = kill_when(server, in_phase, timeout=60, what=f"{phase} ({version})")
    upload.join(30)
    deposit = Deposit.objects.get(version=version)
    assert deposit.state == phase, f"the kill came too late: the deposit is {deposit.state}"
    # The pipeline was not told the deposit succeeded.
    assert upload.answer.error is not None or upload.answer.status not in (200, 202), upload.answer
    primary_link.throttle(None)
    server.wait_for_new_workers(killed)

    # 2. The status URL tells the truth meanwhile, and so does an immediate retry
    # (`curl --retry`): never 200 "already deposited" for a deposit that is not stored.
    assert world.status(server, deposit.pk)["state"] == deposit.state
    retried = world.put(server, version, body)
    deposit.refresh_from_db()
    assert_answer_truthful(retried, deposit.state)

    # 3. Recovery: once the dead worker's lease has run out, the scheduled sweep takes
    # the deposit over. It ends stored safely or failed with a reason staff are told.
    wait_for_lease_to_expire(deposit.pk)
    schedule = world.manage("run_due")
    assert schedule.returncode == 0, schedule.stdout + schedule.stderr
    deposit.refresh_from_db()
    assert deposit.state in (*SETTLED_STATES, "failed"), (
        f"still {deposit.state} after the sweep:\n{schedule.stdout}\n{schedule.stderr}"
    )
    if deposit.state == "failed":
        assert deposit.problem, "a failed deposit must say why"
        assert staff_mails_about(schedule.stdout, version), (
            f"staff were not mailed about the failed deposit:\n{schedule.stdout}"
        )
    assert plaintext_left(world.intake) == []
    seen = world.status(server, deposit.pk)
    assert (seen["state"], seen["problem"]) == (deposit.state, deposit.problem)

    # 4. The pipeline uploads the same archive again: a deposit that is not safely stored
    # is resumed or redone for real (202), and only a stored one is "already deposited".
    was = deposit.state
    again = world.put(server, version, body)
    deposit.refresh_from_db()
    assert_answer_truthful(again, deposit.state)
    assert again.status == (200 if was in SETTLED_STATES else 202), again
    replicated_after_answer(deposit, server)
    assert deposit.problem == ""
    once_more = world.put(server, version, body)
    assert once_more.status == 200, once_more
    assert once_more.body["state"] == "replicated"

    # 5. Every site holds every object; nothing in the clear is left anywhere in intake;
    # reconcile and health agree that all is well.
    assert missing_copies(deposit) == []
    assert plaintext_left(world.intake) == []
    reconcile = world.manage("vault", "reconcile")
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    health = world.manage("vault", "health")
    assert health.returncode == 0, health.stdout + health.stderr


def test_start_up_removes_the_plaintext_of_a_killed_upload_once_its_lease_expired(
    world: World,
) -> None:
    server = world.gunicorn()
    body = archive_of(ARCHIVE_BYTES, seed="start-up")
    upload = world.upload(server, "3.1.0", body, rate=CLIENT_RATE)

    def streaming() -> bool:
        exists = Deposit.objects.filter(version="3.1.0", state="received").exists()
        return exists and upload.sent > len(body) // 2

    kill_when(server, streaming, timeout=60, what="streaming 3.1.0")
    upload.join(30)
    # The fault is real: half an archive in the clear is left in the intake folder, in a
    # file named by the deposit and the lease it was received under.
    deposit = Deposit.objects.get(version="3.1.0")
    left = plaintext_left(world.intake)
    assert left, "the killed upload left nothing to clean up"
    assert all(name.startswith(f"deposit-{deposit.pk}.") for name in left), left
    server.stop()
    wait_for_lease_to_expire(deposit.pk)
    # Start-up may not query the database, so it tells an orphan by its age: a live
    # lease's files are touched at every renewal (every third of the lease), so one
    # renewal period after the lease ran out the file is provably nobody's.
    time.sleep(LEASE_SECONDS / 3 + 0.5)

    # A new server starts (as after a crash or a deploy); before any sweep has run, its
    # start-up removes what no live lease owns.
    world.gunicorn()
    assert plaintext_left(world.intake) == []
