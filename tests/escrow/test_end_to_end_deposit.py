"""End to end, as CI runs it: a release pipeline's HTTP upload to a replica the notary can open.

The archive goes over real HTTP to a live server, which checks, seals and
stores it in the primary bucket (moto over HTTP) and queues replication in
Redis; a real Celery worker process takes the task from a queue of its own,
copies the deposit to two replica buckets and records it in PostgreSQL. The
sealed object fetched from a replica is then opened with the real ``age`` tool
and the notary's key, and must give back the bytes that were sent.

Skipped locally without PostgreSQL and Redis; CI (ESCROW_TEST_REQUIRE_SERVICES=1)
fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from pytest_django.live_server_helper import LiveServer

from config.celery import app as celery_app
from config.storage_sites import sites_from_env
from escrow.models import Deposit, DepositCopy
from escrow.services.tokens import token_create
from escrow.tasks import deposit_replicate_copies_task as deposit_replicate_task
from tests import archives
from tests.conftest import skip_or_fail
from tests.s3server import new_bucket, s3_client, s3_site_config
from tests.workers import database_url_of_the_test_database, start_worker
from vault.site_clients import all_sites
from vault.sites import StorageSite

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 60


@pytest.fixture
def real_services(transactional_db: None) -> None:
    """PostgreSQL and a Redis broker, or skip (fail in CI) before anything starts."""
    if connection.vendor != "postgresql":
        skip_or_fail("the end-to-end deposit needs PostgreSQL (set DATABASE_URL)")
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.CELERY_BROKER_URL.startswith("redis"):
        skip_or_fail("the end-to-end deposit needs Redis as broker (set CELERY_BROKER_URL)")
    if shutil.which("age") is None:
        skip_or_fail("the `age` tool is required (Debian package `age`)")


@pytest.fixture
def live_server(real_services: None) -> Iterator[LiveServer]:
    """A server for this test alone (pytest-django's lives for the whole session, and its
    thread's PostgreSQL connections would then keep the test database from being dropped)."""
    server = LiveServer("localhost")
    yield server
    server.stop()
    connections.close_all()


@pytest.fixture
def own_queue() -> Iterator[str]:
    """Send this process's tasks to a queue that only this test's worker reads.

    Celery has read its settings already, so overriding CELERY_TASK_DEFAULT_QUEUE in
    Django settings would do nothing; the app's conf is changed (and restored) instead.
    """
    queue = f"test-e2e-{uuid.uuid4().hex[:12]}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        routed = celery_app.amqp.router.route({}, deposit_replicate_task.name)
        assert routed["queue"].name == queue  # the override really takes effect
        yield queue
    finally:
        celery_app.conf.task_default_queue = previous


def site_environment(sites: list[StorageSite]) -> dict[str, str]:
    """The ESCROW_SITES variables (config/storage_sites.py) that describe ``sites``."""
    environment = {"ESCROW_SITES": ",".join(site["name"] for site in sites)}
    for site in sites:
        prefix = f"ESCROW_SITE_{site['name'].upper()}"
        environment |= {
            f"{prefix}_URL": f"s3://{site['bucket']}",
            f"{prefix}_ENDPOINT": site["endpoint_url"],
            f"{prefix}_REGION": site["region"],
            f"{prefix}_ACCESS_KEY_ID": site["access_key_id"],
            f"{prefix}_SECRET_ACCESS_KEY": site["secret_access_key"],
        }
    return environment


def put_archive(url: str, body: bytes, secret: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=body,
        method="PUT",
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/octet-stream",
            "X-Archive-SHA256": archives.sha256(body),
            "X-Pipeline-Commit": "e2e0001",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def test_an_archive_sent_over_http_reaches_the_replicas_through_a_real_worker_and_opens_with_age(
    real_services: None,
    live_server: LiveServer,
    own_queue: str,
    settings,
    s3_endpoint: str,
    product,
    staff,
    notary_identity,
    tmp_path: Path,
) -> None:
    admin = s3_client(s3_endpoint)
    sites = [
        s3_site_config(name, new_bucket(admin), s3_endpoint)
        for name in ("primary", "replica1", "replica2")
    ]
    settings.ESCROW_SITES = sites
    for site in all_sites():
        assert site.ensure_ready().versioning  # as an operator sets the buckets up

    # The worker must see the same sites; check the variables describe exactly these.
    sites_env = site_environment(sites)
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("ESCROW_SITE")]:
            patch.delenv(name)
        for name, value in sites_env.items():
            patch.setenv(name, value)
        assert sites_from_env(tmp_path) == sites

    log = tmp_path / "worker.log"
    worker = start_worker(
        own_queue,
        sites_env
        | {
            "DATABASE_URL": database_url_of_the_test_database(),
            "DATABASE_CONN_MAX_AGE": "0",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "ESCROW_VAR_DIR": str(settings.VAR_DIR),
            "ESCROW_INTAKE_DIR": str(settings.ESCROW_INTAKE_DIR),
        },
        log,
    )
    try:
        issued = token_create(product=product, label="CI", actor=staff)
        body = archives.tar_gz()
        status, _ = put_archive(
            f"{live_server.url}/api/v1/products/{product.slug}/deposits/2.4.0", body, issued.secret
        )
        assert status == 202
        deposit = Deposit.objects.get(product=product, version="2.4.0")

        deadline = time.monotonic() + TIMEOUT_SECONDS
        while deposit.state != "replicated":
            assert deposit.state == "stored", (
                f"deposit is {deposit.state} ({deposit.problem}); worker log:\n"
                + log.read_text(errors="replace")
            )
            assert worker.poll() is None, "the worker died:\n" + log.read_text(errors="replace")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"not replicated within {TIMEOUT_SECONDS} s; worker log:\n"
                    + log.read_text(errors="replace")
                )
            time.sleep(0.3)
            deposit.refresh_from_db()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    worker_log = log.read_text(errors="replace")
    assert "escrow.deposit_replicate_copies" in worker_log
    assert "succeeded" in worker_log
    assert set(DepositCopy.objects.filter(deposit=deposit).values_list("site", "kind")) == {
        (site["name"], kind) for site in sites for kind in ("sealed", "manifest", "signature")
    }

    # The notary opens the copy in a replica with the standard age tool and its own key.
    sealed = tmp_path / "sealed.age"
    sealed.write_bytes(
        admin.get_object(Bucket=sites[2]["bucket"], Key=deposit.object_key("sealed"))["Body"].read()
    )
    key_file = tmp_path / "notary.key"
    key_file.write_text(notary_identity.to_string() + "\n")
    opened = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(sealed)], capture_output=True, check=True
    ).stdout
    assert opened == body
