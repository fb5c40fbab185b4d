"""Every S3 client of ours has bounded waits: a hung site fails a request within
MAX_HUNG_WAIT (30 s), retries included, instead of botocore's four tries of 60 s.
The real hung site is in tests/faults/test_hung_site.py; these check the settings."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config

from tests.s3server import s3_site_config
from vault.s3_client import MAX_HUNG_WAIT, S3Options, bounded, create_client
from vault.site_clients import site_for


def test_the_default_options_come_from_the_settings_and_fit_the_bound(settings: Any) -> None:
    options = S3Options()

    assert options.connect_timeout == settings.ESCROW_S3_CONNECT_TIMEOUT
    assert options.read_timeout == settings.ESCROW_S3_READ_TIMEOUT
    assert options.max_attempts == settings.ESCROW_S3_MAX_ATTEMPTS
    assert options.hung_wait <= MAX_HUNG_WAIT


def test_changed_settings_reach_new_options(settings: Any) -> None:
    settings.ESCROW_S3_CONNECT_TIMEOUT = 2
    settings.ESCROW_S3_READ_TIMEOUT = 3
    settings.ESCROW_S3_MAX_ATTEMPTS = 1

    options = S3Options()

    assert (options.connect_timeout, options.read_timeout, options.max_attempts) == (2, 3, 1)
    assert options.hung_wait == 3


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"read_timeout": 40, "max_attempts": 1}, "up to 40 s"),
        ({"read_timeout": 12, "max_attempts": 3}, "3 attempts"),
        ({"connect_timeout": 31, "read_timeout": 1, "max_attempts": 1}, "up to 31 s"),
    ],
)
def test_options_that_could_hold_a_request_too_long_are_refused(
    arguments: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        S3Options(**arguments)


@pytest.mark.parametrize("field", ["connect_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [0, -1])
def test_a_timeout_that_is_not_positive_is_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        S3Options(**{field: value})


def test_bounded_counts_every_try_and_fills_in_missing_timeouts() -> None:
    options = S3Options()

    filled = bounded(None)
    assert filled.connect_timeout == options.connect_timeout
    assert filled.read_timeout == options.read_timeout
    assert filled.retries == {"mode": "standard", "total_max_attempts": options.max_attempts}

    # botocore reads "max_attempts" as retries after the first try; ours counts tries.
    kept = bounded(Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=3))
    assert kept.retries == {"mode": "standard", "total_max_attempts": 1}
    assert (kept.connect_timeout, kept.read_timeout) == (2, 3)


def test_every_site_client_has_the_bounded_waits(settings: Any) -> None:
    settings.ESCROW_S3_READ_TIMEOUT = 7
    site = site_for(s3_site_config("replica1", "vault-timeouts", "http://127.0.0.1:9"))
    config = site.client.meta.config  # type: ignore[attr-defined]

    assert config.read_timeout == 7
    assert config.connect_timeout == settings.ESCROW_S3_CONNECT_TIMEOUT
    assert config.retries["total_max_attempts"] == settings.ESCROW_S3_MAX_ATTEMPTS

    raw = create_client(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    assert raw.meta.config.read_timeout == 7
