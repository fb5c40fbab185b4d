"""Signed, expiring link tokens: the one way the app makes a link a credential.

A token carries its claims and an expiry at most ESCROW_LINK_SECONDS ahead; it
is refused once expired, and also when the setting has since been lowered
below what is left of it."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core import signing


def link_token(*, salt: str, **claims: Any) -> str:
    expires = int(time.time()) + settings.ESCROW_LINK_SECONDS
    return signing.dumps({**claims, "exp": expires}, salt=salt)


def link_claims(token: str, *, salt: str) -> tuple[dict[str, Any], int] | None:
    """The claims and the seconds left, or ``None`` for a forged or expired token."""
    try:
        claims = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    remaining = int(claims.get("exp", 0)) - int(time.time())
    if remaining <= 0 or remaining > settings.ESCROW_LINK_SECONDS:
        return None
    return claims, remaining
