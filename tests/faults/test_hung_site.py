"""A hung storage site (it accepts connections and never answers) fails a request
within a bound instead of holding the caller: fault 6 of issue 12, where one hung
primary held a web worker for 241 s per request.

The tarpit is real: a loopback server that accepts and stays silent, so only the
client's own connect and read timeouts end the wait."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from escrow.backups.store import backup_delete
from escrow.models import Deposit
from tests.faults.conftest import World, archive_of, assert_answer_truthful, plaintext_left
from tests.faults.tarpit import Tarpit
from tests.s3server import DeleteGuard, s3_site_config
from vault.s3_client import S3Options
from vault.site_clients import site_for
from vault.sites import SiteUnavailable
from vault.sites_s3 import S3Site

KEY = "deposits/1/source.tar.age"
DATA = b"sealed bytes"


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    with Tarpit() as pit:
        yield pit


def timed_failure(call: Callable[[], Any]) -> tuple[SiteUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(SiteUnavailable) as failed:
        call()
    return failed.value, time.monotonic() - started


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda site: site.stat(KEY), id="stat"),
        pytest.param(
            lambda site: site.put(KEY, io.BytesIO(DATA), sha256="0" * 64, size=len(DATA)),
            id="put",
        ),
        pytest.param(lambda site: site.open(KEY).read(), id="open"),
    ],
)
def test_a_hung_site_fails_each_request_within_its_timeouts(
    tarpit: Tarpit, action: Callable[[S3Site], Any]
) -> None:
    options = S3Options(connect_timeout=1, read_timeout=1, max_attempts=2)
    site = S3Site(s3_site_config("primary", "vault-primary", tarpit.endpoint_url), options=options)

    error, took = timed_failure(lambda: action(site))

    assert error.transient is True
    assert error.site == "primary"
    # It waited on the silent site (the read timeout, once per attempt: it was not
    # refused at once), and no longer than the bound the options promise.
    assert took >= options.read_timeout
    assert took < options.hung_wait + 3
    assert tarpit.accepted == options.max_attempts


def test_the_configured_timeouts_bound_every_site_the_app_builds(
    tarpit: Tarpit, settings: Any
) -> None:
    settings.ESCROW_S3_CONNECT_TIMEOUT = 1
    settings.ESCROW_S3_READ_TIMEOUT = 1
    settings.ESCROW_S3_MAX_ATTEMPTS = 1
    config = s3_site_config("replica1", "vault-hung", tarpit.endpoint_url)

    site = site_for(config)
    _, took = timed_failure(lambda: site.stat(KEY))

    assert took < 1 + 3
    assert tarpit.accepted == 1


def test_a_hung_backup_site_fails_a_prune_within_the_bound(
    tarpit: Tarpit, settings: Any, vault_delete_guard: DeleteGuard
) -> None:
    vault_delete_guard.allow_bucket("escrow-backups")  # the backup site may prune
    settings.ESCROW_S3_CONNECT_TIMEOUT = 1
    settings.ESCROW_S3_READ_TIMEOUT = 1
    settings.ESCROW_S3_MAX_ATTEMPTS = 2
    settings.ESCROW_BACKUP_SITE = s3_site_config("backups", "escrow-backups", tarpit.endpoint_url)

    error, took = timed_failure(lambda: backup_delete("backups/2026/01/01/backup.tar.age", "v1"))

    assert "escrow-backups" in str(error)
    assert took < S3Options(connect_timeout=1, read_timeout=1, max_attempts=2).hung_wait + 3
    assert tarpit.accepted == 2


def test_a_hung_primary_answers_the_pipeline_promptly_and_claims_nothing(
    world: World, tarpit: Tarpit, settings: Any
) -> None:
    # Fault 6: with botocore's defaults one such upload held a web worker for 241 s.
    options = S3Options(connect_timeout=1, read_timeout=2, max_attempts=2)
    world.sites = [
        s3_site_config("primary", "vault-primary", tarpit.endpoint_url),
        world.sites[1],
    ]
    settings.ESCROW_SITES = world.sites
    world.extra_env |= {
        "ESCROW_S3_CONNECT_TIMEOUT": "1",
        "ESCROW_S3_READ_TIMEOUT": "2",
        "ESCROW_S3_MAX_ATTEMPTS": "2",
    }
    server = world.gunicorn()

    started = time.monotonic()
    answer = world.put(server, "6.0.0", archive_of(256 * 1024, seed="hung primary"))
    took = time.monotonic() - started

    deposit = Deposit.objects.get(version="6.0.0")
    assert_answer_truthful(answer, deposit.state)
    assert answer.status == 503, answer
    assert int(answer.headers["retry-after"]) > 0
    assert deposit.state not in ("stored", "replicated")
    assert tarpit.accepted >= options.max_attempts  # it did wait on the hung site
    assert took < 2 * options.hung_wait + 5, took
    assert plaintext_left(world.intake) == []
    # The worker is free again: the status URL answers at once, with the same truth.
    started = time.monotonic()
    assert world.status(server, deposit.pk)["state"] == deposit.state
    assert time.monotonic() - started < 5
