"""The database drops the connection of the web worker while it stores a deposit (issue
12, fault 1: a deposit left ``sealed``, three objects in the primary site and no rows).

``pg_terminate_backend`` ends every server process of the test's own database but
this test's, while a real gunicorn worker is storing the sealed file in the primary
(S3, slowed by a relay so the store lasts). PostgreSQL only: SQLite has no
connection to drop (skipped there; CI runs it on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection

from escrow.models import Deposit
from tests.conftest import skip_or_fail
from tests.faults.conftest import (
    SETTLED_STATES,
    World,
    archive_of,
    assert_answer_truthful,
    missing_copies,
    plaintext_left,
    s3_site_behind,
    staff_mails_about,
    wait_for,
    wait_for_lease_to_expire,
)
from tests.faults.relay import Relay
from tests.s3server import MotoServer


def _terminate_other_backends() -> int:
    """End every other server process on this database; how many there were."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_a_dropped_database_connection_mid_store_is_recovered_by_the_sweeper(
    world: World, moto_server: MotoServer, relays: Callable[[str], Relay]
) -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("pg_terminate_backend needs PostgreSQL (set DATABASE_URL)")
    link = relays(moto_server.endpoint_url)
    world.use_sites([s3_site_behind("primary", moto_server, link), world.sites[1]])
    server = world.gunicorn()
    body = archive_of(4 * 1024 * 1024, seed="dropped connection")
    link.throttle(2 * 1024 * 1024)
    upload = world.upload(server, "7.0.0", body)

    def sealed() -> bool:
        return Deposit.objects.filter(version="7.0.0", state="sealed").exists()

    wait_for(sealed, timeout=60, message=lambda: "never sealed:\n" + server.log_text())
    assert _terminate_other_backends() >= 1, "the web worker had no connection to drop"
    link.throttle(None)
    upload.join(60)
    assert not upload.is_alive()
    deposit = Deposit.objects.get(version="7.0.0")
    # Whatever the worker managed, the pipeline is not told more than is true.
    if upload.answer.error is None:
        assert_answer_truthful(upload.answer, deposit.state)
    # Unless the worker reconnected and finished (then it is simply safe), the sweeper
    # takes the deposit over once the worker's lease has run out.
    if deposit.state not in SETTLED_STATES:
        assert upload.answer.status not in (200, 202), upload.answer
        wait_for_lease_to_expire(deposit.pk)
        schedule = world.manage("run_due")
        assert schedule.returncode == 0, schedule.stdout + schedule.stderr
        deposit.refresh_from_db()
        assert deposit.state in (*SETTLED_STATES, "failed"), (
            f"still {deposit.state} after the sweep:\n{schedule.stdout}\n{schedule.stderr}"
        )
        if deposit.state == "failed":
            assert deposit.problem
            assert staff_mails_about(schedule.stdout, "7.0.0"), schedule.stdout

    seen = world.status(server, deposit.pk)
    assert seen["state"] == deposit.state
    again = world.put(server, "7.0.0", body)
    deposit.refresh_from_db()
    assert_answer_truthful(again, deposit.state)
    assert deposit.state == "replicated", (deposit.state, deposit.problem)
    assert missing_copies(deposit) == []
    assert plaintext_left(world.intake) == []
    health = world.manage("vault", "health")
    assert health.returncode == 0, health.stdout + health.stderr
