from __future__ import annotations

from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer portal: the beneficiary's door."""

    name = "portal"
    verbose_name = "Customer portal"
