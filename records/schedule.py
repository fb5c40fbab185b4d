"""The schedule without a Celery beat: run every job that is due, once.

Production runs ``CELERY_BEAT_SCHEDULE`` with Celery beat and workers. The
embedded default has neither (no broker, tasks in-process), so `make run`
starts ``manage.py run_schedule``, which calls :func:`jobs_run_due` every
minute; ``manage.py run_due`` calls it once, for operators and tests. Both read
the same schedule, so the two worlds cannot drift apart.

Each job's last run is a row (``ScheduledRun``) locked while the job is
claimed, so two schedulers never run the same job twice in one period, and a
restart neither skips nor repeats a job that ran. A job that fails is logged
with its error and tried again at its next period, like a beat entry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction

from records.models import ScheduledRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRun:
    name: str
    task: str
    ok: bool
    outcome: str


def _period(entry: dict[str, object]) -> timedelta:
    schedule = entry["schedule"]
    if isinstance(schedule, timedelta):
        return schedule
    if isinstance(schedule, int | float):
        return timedelta(seconds=schedule)
    raise TypeError(f"run_due understands schedules in seconds, not {schedule!r}")


def _claim(name: str, now: datetime, period: timedelta) -> bool:
    """Mark the job as run now if it is due; False when it ran within its period."""
    with transaction.atomic():
        row = ScheduledRun.objects.select_for_update().filter(name=name).first()
        if row is None:
            try:
                with transaction.atomic():
                    ScheduledRun.objects.create(name=name, last_run_at=now)
            except IntegrityError:  # another scheduler claimed it first
                return False
            return True
        if now - row.last_run_at < period:
            return False
        row.last_run_at = now
        row.save(update_fields=["last_run_at"])
        return True


def jobs_run_due(*, now: datetime) -> list[JobRun]:
    """Run every scheduled job whose period has passed since its last run (or that
    never ran), in this process, and return what each did."""
    runs = []
    for name, entry in sorted(settings.CELERY_BEAT_SCHEDULE.items()):
        if not _claim(name, now, _period(entry)):
            continue
        task_name = str(entry["task"])
        try:
            result = current_app.tasks[task_name].apply(throw=True).get()
        except Exception as error:  # a failed job must not stop the others
            logger.exception("scheduled job %s (%s) failed", name, task_name)
            run = JobRun(name, task_name, ok=False, outcome=f"failed: {error}")
        else:
            run = JobRun(name, task_name, ok=True, outcome=repr(result)[:500])
        ScheduledRun.objects.filter(name=name).update(last_outcome=run.outcome)
        runs.append(run)
    return runs
