"""SIGKILL to a real Celery worker while it replicates a deposit (issue 12, faults 1 and
7: a killed worker's task came back only after Redis's one-hour visibility timeout).

The deposit is taken in this process and its replication queued in Redis, on a queue
of this test's own; a real worker (``tests.workers``) takes it and copies to an S3
replica slowed by a relay, and is killed mid-copy. A second worker is started, and
the schedule (the sweeper, the hourly reconcile) runs on a clock moved past the
replication lease instead of waiting for it. The deposit must end ``replicated``
with every copy in every site, and a redelivered or repeated task must do no harm.

Needs PostgreSQL and Redis, like tests/records/test_celery_worker.py (skipped
locally without them; CI fails instead)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from config.celery import app as celery_app
from escrow.models import Deposit, DepositCopy
from escrow.tasks import deposit_replicate_copies_task
from tests import archives
from tests.conftest import skip_or_fail
from tests.faults.conftest import (
    World,
    archive_of,
    missing_copies,
    plaintext_left,
    s3_site_behind,
    wait_for,
)
from tests.faults.relay import Relay
from tests.s3server import MotoServer
from tests.workers import start_worker

pytestmark = pytest.mark.services


@pytest.fixture
def own_queue() -> Iterator[str]:
    """This process's tasks go to a queue only this test's workers read (Celery has read
    its settings already, so the app's conf is changed and restored)."""
    queue = f"test-faults-{uuid.uuid4().hex[:12]}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        yield queue
    finally:
        celery_app.conf.task_default_queue = previous


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_a_killed_celery_worker_mid_replication_still_ends_replicated(
    world: World,
    moto_server: MotoServer,
    relays: Callable[[str], Relay],
    own_queue: str,
) -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("the Celery worker fault needs PostgreSQL (set DATABASE_URL)")
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        skip_or_fail("the Celery worker fault needs Redis as broker (set CELERY_BROKER_URL)")
    link = relays(moto_server.endpoint_url)
    world.use_sites([world.sites[0], s3_site_behind("replica", moto_server, link)])
    link.throttle(512 * 1024)
    worker_env = world.env | {
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DATABASE_CONN_MAX_AGE": "0",
    }
    first = start_worker(own_queue, worker_env, world.tmp / "worker-1.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        body = archive_of(3 * 1024 * 1024, seed="killed celery worker")
        response = Client().put(
            f"/api/v1/products/{world.product_slug}/deposits/8.0.0",
            data=body,
            content_type="application/octet-stream",
            headers={
                "Authorization": f"Bearer {world.secret}",
                "X-Archive-SHA256": archives.sha256(body),
            },
        )
        assert response.status_code == 202, response.content
        deposit = Deposit.objects.get(version="8.0.0")
        assert deposit.state == "stored"

        # The fault: the worker is copying the sealed file to the replica when it dies.
        wait_for(
            lambda: link.connections_accepted > 0,
            timeout=60,
            message=lambda: (
                "the worker never started copying:\n"
                + (world.tmp / "worker-1.log").read_text(errors="replace")
            ),
        )
        time.sleep(1.0)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        deposit.refresh_from_db()
        assert deposit.state == "stored", "the kill came too late: replication had finished"
        status = Client().get(
            f"/api/v1/deposits/{deposit.pk}", headers={"Authorization": f"Bearer {world.secret}"}
        )
        assert status.json()["state"] == "stored"

        # Recovery: a new worker, and the schedule on a clock past the replication lease.
        link.throttle(None)
        second = start_worker(own_queue, worker_env, world.tmp / "worker-2.log")
        later = timezone.now() + timedelta(
            seconds=settings.ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS + 60
        )
        with time_machine.travel(later, tick=True):
            call_command("run_due", stdout=StringIO())
        wait_for(
            lambda: Deposit.objects.filter(pk=deposit.pk, state="replicated").exists(),
            timeout=60,
            message=lambda: (
                "not replicated after the sweep:\n"
                + (world.tmp / "worker-2.log").read_text(errors="replace")
            ),
        )
        # A redelivered task (acks_late) finds the work done and does no harm: send the
        # same task again and let the live worker run it.
        log = world.tmp / "worker-2.log"
        copies = sorted(DepositCopy.objects.filter(deposit=deposit).values_list("pk", "sha256"))
        runs_before = log.read_text(errors="replace").count("succeeded")
        deposit_replicate_copies_task.apply_async(
            kwargs={"deposit_id": deposit.pk}, queue=own_queue
        )
        wait_for(
            lambda: log.read_text(errors="replace").count("succeeded") > runs_before,
            timeout=60,
            message=lambda: (
                "the repeated task did not succeed:\n" + log.read_text(errors="replace")
            ),
        )
        assert second.poll() is None, log.read_text(errors="replace")
        assert (
            sorted(DepositCopy.objects.filter(deposit=deposit).values_list("pk", "sha256"))
            == copies
        )
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert deposit.problem == ""
    assert missing_copies(deposit) == []
    assert plaintext_left(world.intake) == []
    health = world.manage("vault", "health")
    assert health.returncode == 0, health.stdout + health.stderr
