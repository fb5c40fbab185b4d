from __future__ import annotations

from django.apps import AppConfig


class EscrowConfig(AppConfig):
    name = "escrow"
    verbose_name = "Escrow"

    def ready(self) -> None:
        # Registers the production checks run by `manage.py check --deploy`.
        from escrow import checks  # noqa: F401
