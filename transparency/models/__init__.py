"""The transparency app's models."""

from __future__ import annotations

from transparency.models.log import Checkpoint, LogHead, LogLeaf
from transparency.models.witness import WitnessKey, WitnessSignature

__all__ = ["Checkpoint", "LogHead", "LogLeaf", "WitnessKey", "WitnessSignature"]
