from __future__ import annotations

from django.apps import AppConfig


class RecordsConfig(AppConfig):
    """What the system keeps about itself: the audit chain, notifications,
    stored files, signed links and PDF documents."""

    name = "records"
    verbose_name = "Records"

    def ready(self) -> None:
        # Imports that have to wait until Django's app registry is ready:
        # - this app's Celery tasks, registered with the app so that the task seam
        #   (records.queue) can send them by name; tasks import models;
        # - the audit row for every sign-in lock-out: axes' signal is received here,
        #   not in accounts, because the audit log is this app's, and a receiver has
        #   to be connected while the apps load (axes' signals module imports its
        #   models).
        from axes.signals import user_locked_out

        from records import tasks  # noqa: F401
        from records.lockouts import login_locked_out_record

        user_locked_out.connect(login_locked_out_record, dispatch_uid="records.login_locked_out")
