"""End to end: a real Celery worker process, the Redis broker and PostgreSQL.

Runs when DATABASE_URL and CELERY_BROKER_URL point at real services (CI sets
both); otherwise it is skipped locally and fails in CI."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from records.models import AuditEntry
from records.services.audit import audit_record
from records.tasks import audit_chain_verify_task as audit_chain_verify
from tests.conftest import skip_or_fail
from tests.workers import database_url_of_the_test_database, start_worker

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_task_from_redis_against_postgresql(tmp_path) -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("the real-worker test needs PostgreSQL (set DATABASE_URL)")
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.CELERY_BROKER_URL.startswith("redis"):
        skip_or_fail("the real-worker test needs Redis as broker (set CELERY_BROKER_URL)")

    for step in range(3):
        audit_record(action="test.before_worker", details={"step": step})
    # A queue of its own, so no other worker on this machine takes the task.
    queue = f"test-{uuid.uuid4().hex[:12]}"
    worker = start_worker(
        queue,
        {
            "DATABASE_URL": database_url_of_the_test_database(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "ESCROW_VAR_DIR": str(tmp_path),
        },
        tmp_path / "worker.log",
    )
    try:
        audit_chain_verify.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if AuditEntry.objects.filter(action="audit.chain_verified").exists():
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.3)
        else:
            pytest.fail(
                "the worker did not run the task:\n" + (tmp_path / "worker.log").read_text()
            )
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    entry = AuditEntry.objects.get(action="audit.chain_verified")
    assert entry.details == {"entries": 3}
    assert entry.actor_label == "system"
    assert "records.audit_chain_verify" in (tmp_path / "worker.log").read_text()
