from __future__ import annotations

from django.apps import AppConfig


class NotaryPortalConfig(AppConfig):
    name = "notary_portal"
    verbose_name = "Notary portal"
