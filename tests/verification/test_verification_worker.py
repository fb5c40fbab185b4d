"""Build verification with a real Celery worker: the deposit is answered, its build task
goes through Redis to the receiving machine's own queue (``verify@<hostname>``), and a
worker process on this machine, consuming that queue, builds it in the sandbox from the
intake copy and records the outcome in PostgreSQL.

Skipped locally without PostgreSQL and Redis; CI (ESCROW_TEST_REQUIRE_SERVICES=1) fails
instead."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from config.celery import app as celery_app
from config.storage_sites import default_sites
from escrow.models import Deposit
from escrow.services.tokens import token_create
from tests import archives
from tests.conftest import skip_or_fail
from tests.verification.projects import (
    MAIN_C,
    PASSING_RECIPE,
    URL,
    intake_files,
    project,
    sha256,
)
from tests.workers import database_url_of_the_test_database, start_worker
from vault.build_sandbox import sandbox_available
from verification.models import BuildVerification, VerificationState

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
TIMEOUT_SECONDS = 120


@pytest.fixture
def real_services(transactional_db: None) -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("the verification worker test needs PostgreSQL (set DATABASE_URL)")
    if django_settings.CELERY_TASK_ALWAYS_EAGER or not django_settings.CELERY_BROKER_URL.startswith(
        "redis"
    ):
        skip_or_fail("the verification worker test needs Redis as broker (set CELERY_BROKER_URL)")
    reason = sandbox_available()
    if reason is not None:
        skip_or_fail(f"the build sandbox cannot run here: {reason}")


@pytest.fixture
def own_queues(settings: Any) -> Iterator[tuple[str, str]]:
    """Queues only this test's worker reads: the default one (replication), and the
    verification queue of this machine under a prefix of the test's own."""
    default = f"test-verify-default-{uuid.uuid4().hex[:12]}"
    settings.ESCROW_VERIFY_QUEUE_PREFIX = f"test-verify-{uuid.uuid4().hex[:12]}"
    verify = f"{settings.ESCROW_VERIFY_QUEUE_PREFIX}@{socket.gethostname()}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = default
    try:
        routed = celery_app.amqp.router.route({}, "escrow.deposit_build_verify")
        assert routed["queue"].name == verify  # routed to this machine's queue
        yield default, verify
    finally:
        celery_app.conf.task_default_queue = previous


def test_a_real_worker_on_the_receiving_machine_builds_the_deposit(
    real_services: None,
    own_queues: tuple[str, str],
    settings: Any,
    product: Any,
    staff: Any,
    notary_identity: Any,
    tmp_path: Path,
) -> None:
    settings.ESCROW_VERIFY_ENABLED = True
    var = tmp_path / "var"
    settings.ESCROW_SITES = default_sites(var / "vault")  # what the worker derives too
    default, verify = own_queues
    log = tmp_path / "worker.log"
    worker = start_worker(
        f"{default},{verify}",
        {
            "DATABASE_URL": database_url_of_the_test_database(),
            "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
            "ESCROW_VAR_DIR": str(var),
            "ESCROW_INTAKE_DIR": str(settings.ESCROW_INTAKE_DIR),
            "ESCROW_VERIFY_QUEUE_PREFIX": settings.ESCROW_VERIFY_QUEUE_PREFIX,
            "ESCROW_SIGNATURE_DOMAIN": settings.ESCROW_SIGNATURE_DOMAIN,
        },
        log,
    )
    try:
        issued = token_create(product=product, label="CI", actor=staff)
        body = archives.tar_gz(project(PASSING_RECIPE))
        response = Client().put(
            URL.format(version="1.0.0"),
            data=body,
            content_type="application/octet-stream",
            HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
            HTTP_X_ARCHIVE_SHA256=archives.sha256(body),
        )
        # Answered as soon as it is stored: the build has not run yet.
        assert response.status_code == 202, response.content
        assert response.json()["state"] == "stored"
        deposit_id = response.json()["id"]
        deadline = time.monotonic() + TIMEOUT_SECONDS
        record = BuildVerification.objects.get(deposit_id=deposit_id)
        while not record.is_final and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.5)
            record.refresh_from_db()
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert record.state == VerificationState.PASSED, (record.problem, log.read_text())
    assert record.lease_owner.startswith(f"{socket.gethostname()[:100]}:")
    assert {artefact["path"]: artefact["sha256"] for artefact in record.artefacts} == {
        "out/ledger.txt": sha256(b"ledger 1.0\n"),
        "out/main.c": sha256(MAIN_C),
    }
    assert record.sealed_log_key and record.addendum["outcome"] == "passed"
    assert intake_files(settings) == []
    assert Deposit.objects.get(pk=deposit_id).state in ("stored", "replicated")
    assert "escrow.deposit_build_verify" in log.read_text()
