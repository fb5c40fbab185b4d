"""``manage.py run_due``: run every scheduled job that is due now, once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from records.schedule import jobs_run_due


class Command(BaseCommand):
    help = "Run every job of the schedule that is due now, once (Celery beat's work, by hand)."

    def handle(self, *args: Any, **options: Any) -> None:
        runs = jobs_run_due(now=timezone.now())
        for run in runs:
            style = self.style.SUCCESS if run.ok else self.style.ERROR
            self.stdout.write(style(f"{run.name} ({run.task}): {run.outcome}"))
        if not runs:
            self.stdout.write("Nothing is due.")
