"""``manage.py run_schedule``: the embedded default's scheduler (`make run` starts it).

Every ``--interval`` seconds it runs the jobs that are due, in this process, until
it is stopped (Ctrl-C or SIGTERM). Production runs Celery beat instead."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections
from django.utils import timezone

from records.schedule import jobs_run_due


class Command(BaseCommand):
    help = "Run the schedule without Celery beat: every job when it is due, until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=60.0, help="seconds between looks")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"Scheduler: looking for due jobs every {options['interval']:g} s.")
        while not stop.is_set():
            close_old_connections()
            for run in jobs_run_due(now=timezone.now()):
                state = "ok" if run.ok else "FAILED"
                self.stdout.write(f"scheduler: {run.name} {state}: {run.outcome}", ending="\n")
                self.stdout.flush()
            stop.wait(options["interval"])
        self.stdout.write("Scheduler stopped.")
