from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Licences, subscriptions, the escrow fee, invoices and payments."""

    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Registers this app's Celery tasks for the seam in records.queue; tasks
        # import models, so this waits for Django's app registry.
        from billing import tasks  # noqa: F401
