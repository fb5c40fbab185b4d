from __future__ import annotations

import logging

from django.apps import AppConfig
from django.conf import settings


class EscrowConfig(AppConfig):
    """Deposits, the vault's services, release claims, backups and the deposit API."""

    name = "escrow"
    verbose_name = "Escrow"

    def ready(self) -> None:
        # Both modules import models, so they wait for Django's app registry:
        # checks registers the production checks of `manage.py check --deploy`;
        # tasks registers this app's Celery tasks for the seam in records.queue.
        from escrow import checks, tasks  # noqa: F401
        from escrow.services.sweeper import intake_orphans_remove

        # Start-up cleanup: plaintext and partial ciphertext that a killed process left
        # in the intake folder, told by age alone (no database query is allowed here),
        # build verification's intake copies (.verify, with their .scratch folders) by
        # the lease expiry each copy carries as its modification time; the scheduled
        # sweep also removes them by their lease, every minute.
        try:
            intake_orphans_remove(older_than=settings.ESCROW_DEPOSIT_LEASE_SECONDS)
        except OSError:
            logging.getLogger(__name__).exception("start-up intake cleanup failed")
