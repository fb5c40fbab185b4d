"""Celery never loses a task to a killed worker and never runs one twice at once:
messages are acknowledged after the task (acks_late), handed back when the worker
process dies (reject_on_worker_lost), taken one at a time, and redelivered by Redis
only after a visibility timeout longer than any task may run or wait for a retry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app
from records.queue import EscrowTask

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_acknowledges_late_and_hands_back_what_a_killed_process_held() -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_the_visibility_timeout_outlasts_the_longest_task_and_retry_countdown() -> None:
    app.loader.import_default_modules()  # every task module, as a worker loads them
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    ours = {name: task for name, task in app.tasks.items() if isinstance(task, EscrowTask)}

    assert visibility == settings.CELERY_VISIBILITY_TIMEOUT
    assert visibility > app.conf.task_time_limit
    assert {"escrow.backup_run", "escrow.deposit_replicate_copies"} <= set(ours)
    # A retry waits for its countdown in the worker, unacknowledged: a countdown
    # longer than the visibility timeout would be delivered a second time.
    too_long = {
        name: task.retry_backoff_max
        for name, task in ours.items()
        if task.retry_backoff_max >= visibility or (task.time_limit or 0) >= visibility
    }
    assert too_long == {}


def _load_settings(env: dict[str, str], show: str = "") -> subprocess.CompletedProcess[str]:
    """Import the settings in a fresh interpreter with ``env`` (and nothing of ours
    inherited), printing ``show`` (a setting's name) when given."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "ESCROW_", "DATABASE_", "CELERY_"))
    }
    code = "import config.settings as s" + (f"; print(s.{show})" if show else "")
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CELERY_VISIBILITY_TIMEOUT": "3600"}, "VISIBILITY_TIMEOUT (3600 s) must be longer"),
        ({"CELERY_VISIBILITY_TIMEOUT": "60"}, "longer than CELERY_TASK_TIME_LIMIT (3600 s)"),
        ({"ESCROW_S3_READ_TIMEOUT": "40"}, "ESCROW_S3_* timeouts: a hung site"),
        ({"ESCROW_S3_MAX_ATTEMPTS": "5"}, "5 attempts"),
    ],
)
def test_settings_that_would_redeliver_a_running_task_or_hang_are_refused_at_start(
    env: dict[str, str], named: str
) -> None:
    loaded = _load_settings(env)

    assert loaded.returncode != 0
    assert "ImproperlyConfigured" in loaded.stderr
    assert named in loaded.stderr


def test_the_default_visibility_timeout_follows_a_longer_time_limit() -> None:
    loaded = _load_settings(
        {"CELERY_TASK_TIME_LIMIT": "7200", "ESCROW_EXPORT_BUILD_TIMEOUT": "9000"},
        show="CELERY_BROKER_TRANSPORT_OPTIONS",
    )

    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "{'visibility_timeout': 7800}"
