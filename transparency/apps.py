from __future__ import annotations

from django.apps import AppConfig


class TransparencyConfig(AppConfig):
    """The append-only transparency log of deposits: leaves, signed checkpoints and
    the notaries' witness co-signatures (RFC 6962 hashing, C2SP checkpoints)."""

    name = "transparency"
    verbose_name = "Transparency log"
