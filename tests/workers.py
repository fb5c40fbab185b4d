"""A real Celery worker process for the tests that need one (marked ``services``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url_of_the_test_database() -> str:
    """DATABASE_URL of the database pytest-django created, for a worker process."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(queue: str, extra: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A solo-pool worker consuming only ``queue`` (no other worker on this machine
    takes the test's tasks), with ``extra`` environment and its output in ``log``.
    Storage-site variables of the calling environment are not inherited."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("ESCROW_SITE")
    }
    with log.open("wb") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--queues",
                queue,
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=inherited | extra,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
