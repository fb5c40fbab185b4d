from __future__ import annotations

from django.db import models


class ScheduledRun(models.Model):
    """When a job of the schedule (``CELERY_BEAT_SCHEDULE``) last ran through
    ``run_due``: the embedded default's scheduler, and the operators' command."""

    name = models.CharField(max_length=100, unique=True, help_text="The schedule entry.")
    last_run_at = models.DateTimeField()
    last_outcome = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_run_at:%Y-%m-%d %H:%M}"
