from __future__ import annotations

from django.apps import AppConfig
from django_otp.plugins.otp_totp.apps import DefaultConfig as TotpDefaultConfig


class NotaryPortalConfig(AppConfig):
    name = "notary_portal"
    verbose_name = "Notary portal"


class NotaryAuthenticatorsConfig(TotpDefaultConfig):
    """django-otp's TOTP devices, under a name staff recognise in the admin."""

    verbose_name = "Notary authenticators (TOTP)"
