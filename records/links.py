"""Signed link tokens: the one module that makes a link a credential, and checks it.

A download token carries its claims and an expiry at most ESCROW_LINK_SECONDS
ahead; it is refused once expired, and also when the setting has since been
lowered below what is left of it. ``signed_value``/``signed_claims`` are the bare
signature, for a link whose lifetime its object decides (the vendor's claim
link). Each salt names one kind of link, so a token of one kind never opens
another. The escrow's own links (certificates, evidence, releases, the vendor's
claim page) are in escrow/links.py, built on these.

``public_url`` makes a path absolute for an e-mail: from ESCROW_PUBLIC_URL, or
else from the scheme and host of the request being served (remembered by
config.middleware.RequestOriginMiddleware), so a link works on whatever port
the server runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse

from accounts.models import User
from records.models import StoredFile

#: Where links point when neither ESCROW_PUBLIC_URL nor a request says: the
#: address `manage.py runserver` listens on. ``check --deploy`` refuses an empty
#: ESCROW_PUBLIC_URL, so production never falls back to it.
FALLBACK_PUBLIC_URL = "http://127.0.0.1:8000"

# The scheme and host of the request this thread or task is serving, if any.
_request_origin: ContextVar[str | None] = ContextVar("escrow_request_origin", default=None)


@contextmanager
def request_origin(origin: str | None) -> Iterator[None]:
    """Serve links from ``origin`` (e.g. ``http://127.0.0.1:8123``) within the block.

    The middleware passes the request's own scheme and host, which Django has
    checked against ALLOWED_HOSTS; ``None`` leaves the fallback."""
    token = _request_origin.set(origin.rstrip("/") if origin else None)
    try:
        yield
    finally:
        _request_origin.reset(token)


def configured_public_origin() -> str:
    """Where the site is reached, from ESCROW_PUBLIC_URL alone, never from a request.

    For links that a stranger can have mailed to someone else (a password
    reset): the address must not depend on the Host header of the request that
    asked for it."""
    return settings.ESCROW_PUBLIC_URL.rstrip("/") or FALLBACK_PUBLIC_URL


def public_origin() -> str:
    """Where the site is reached: ESCROW_PUBLIC_URL when it is set; otherwise the
    scheme and host of the request being served (so `make run` on any port gives
    working links); otherwise, in a worker with no request, FALLBACK_PUBLIC_URL."""
    return settings.ESCROW_PUBLIC_URL.rstrip("/") or _request_origin.get() or FALLBACK_PUBLIC_URL


def public_url(path: str) -> str:
    """``path`` (from ``reverse``) made absolute for an e-mail, from ``public_origin``."""
    return _joined(public_origin(), path)


def _joined(base: str, path: str) -> str:
    if "://" in path or path.startswith("//"):
        raise ValueError(f"public_url takes a path on this site, not an address: {path!r}")
    return f"{base}/{path.lstrip('/')}"


def signed_value(*, salt: str, **claims: Any) -> str:
    """The claims, signed with the secret key under ``salt`` (no expiry)."""
    return signing.dumps(claims, salt=salt)


def signed_claims(token: str, *, salt: str) -> dict[str, Any] | None:
    """The claims of a token signed under ``salt``, or ``None`` when it is forged."""
    try:
        claims = signing.loads(token, salt=salt)
    except signing.BadSignature:
        return None
    return claims if isinstance(claims, dict) else None


def link_token(*, salt: str, **claims: Any) -> str:
    """A token for ``claims`` that expires ESCROW_LINK_SECONDS (at most an hour) from now."""
    expires = int(time.time()) + settings.ESCROW_LINK_SECONDS
    return signed_value(salt=salt, **claims, exp=expires)


def link_claims(token: str, *, salt: str) -> tuple[dict[str, Any], int] | None:
    """The claims and the seconds left, or ``None`` for a forged or expired token."""
    claims = signed_claims(token, salt=salt)
    if claims is None:
        return None
    remaining = int(claims.get("exp", 0)) - int(time.time())
    if remaining <= 0 or remaining > settings.ESCROW_LINK_SECONDS:
        return None
    return claims, remaining


STORED_FILE_SALT = "escrow.file-link"


def stored_file_link(*, stored: StoredFile, user: User) -> str:
    """A download path for ``user`` that works for ESCROW_LINK_SECONDS (at most an hour)."""
    token = link_token(salt=STORED_FILE_SALT, file=stored.pk, user=user.pk)
    return reverse("file-download", kwargs={"token": token})


def stored_file_from_link(token: str) -> tuple[StoredFile, User, int] | None:
    """The file and user a link was made for and the seconds it has left; ``None`` when
    the link is forged, expired, or its user is no longer active."""
    found = link_claims(token, salt=STORED_FILE_SALT)
    if found is None:
        return None
    claims, remaining = found
    stored = StoredFile.objects.filter(pk=claims.get("file", 0)).first()
    user = User.objects.filter(pk=claims.get("user", 0), is_active=True).first()
    if stored is None or user is None:
        return None
    return stored, user, remaining
