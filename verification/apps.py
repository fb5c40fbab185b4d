from __future__ import annotations

from django.apps import AppConfig


class VerificationConfig(AppConfig):
    """Build verification of deposits: the recipes, and each deposit's verification
    record and its own state machine beside the deposit's."""

    name = "verification"
    verbose_name = "Build verification"
