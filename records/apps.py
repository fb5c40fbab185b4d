from __future__ import annotations

from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """What the system keeps about itself: the audit chain, notifications,
    stored files, signed links and PDF documents."""

    name = "records"
    verbose_name = "Records"

    def ready(self) -> None:
        # Registers this app's Celery tasks with the app, so that the task seam
        # (records.queue) can send them by name; tasks import models, so this
        # import has to wait until Django's app registry is ready.
        from records import tasks  # noqa: F401
