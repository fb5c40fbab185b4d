from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Organisations, their users and roles, and the products vendors sell."""

    name = "accounts"
    verbose_name = "Accounts"
