"""The verification app's models."""

from __future__ import annotations

from verification.models.verifications import (
    BADGE_LABELS,
    FINAL_STATES,
    OPEN_STATES,
    BuildVerification,
    ProductBuildRecipe,
    VerificationState,
)

__all__ = [
    "BADGE_LABELS",
    "FINAL_STATES",
    "OPEN_STATES",
    "BuildVerification",
    "ProductBuildRecipe",
    "VerificationState",
]
