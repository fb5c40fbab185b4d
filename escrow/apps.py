from __future__ import annotations

from django.apps import AppConfig


class EscrowConfig(AppConfig):
    """Deposits, the vault's services, release claims, backups and the deposit API."""

    name = "escrow"
    verbose_name = "Escrow"

    def ready(self) -> None:
        # Both modules import models, so they wait for Django's app registry:
        # checks registers the production checks of `manage.py check --deploy`;
        # tasks registers this app's Celery tasks for the seam in records.queue.
        from escrow import checks, tasks  # noqa: F401
