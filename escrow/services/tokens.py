"""Deposit tokens: random, shown once, stored hashed, scoped to one product."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Product, User
from escrow.models import DepositToken
from records.services.audit import audit_record

TOKEN_PREFIX = "esc"


@dataclass(frozen=True)
class IssuedToken:
    token: DepositToken
    secret: str  # the full token text; shown once, never stored


class TokenRefused(Exception):
    """The token cannot be used: unknown, revoked, expired, or from the wrong network."""

    def __init__(self, reason: str, *, token: DepositToken | None = None, status: int = 401):
        super().__init__(reason)
        self.token = token
        self.status = status


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_networks(networks: list[str]) -> list[str]:
    """Parse CIDR ranges strictly; a bare address means just that address."""
    normalised = []
    for network in networks:
        try:
            normalised.append(str(ipaddress.ip_network(network.strip(), strict=True)))
        except ValueError as error:
            raise ValidationError(
                {"allowed_networks": f"{network!r} is not a CIDR range: {error}"}
            ) from error
    return normalised


def token_create(
    *,
    product: Product,
    label: str,
    actor: User | None,
    allowed_networks: list[str] | None = None,
    expires_in_days: int | None = None,
) -> IssuedToken:
    """Create a token for ``product``; the returned secret is the only copy there will be."""
    if expires_in_days is not None and expires_in_days < 1:
        raise ValidationError({"expires_at": "A token must live at least one day."})
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = DepositToken(
        product=product,
        label=label.strip(),
        prefix=prefix,
        secret_sha256=_digest(secret),
        allowed_networks=normalise_networks(allowed_networks or []),
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
        created_by=actor,
    )
    token.full_clean()
    with transaction.atomic():
        token.save(force_insert=True)
        audit_record(
            action="token.create",
            actor=actor,
            target=token,
            details={
                "product": product.slug,
                "networks": token.allowed_networks,
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            },
        )
    return IssuedToken(token=token, secret=f"{TOKEN_PREFIX}_{prefix}_{secret}")


def token_revoke(*, token: DepositToken, actor: User | None, reason: str = "") -> DepositToken:
    """Revoke a token at once; requests with it are refused from now on."""
    with transaction.atomic():
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(action="token.revoke", actor=actor, target=token, reason=reason)
    return token


def _network_allowed(token: DepositToken, address: str) -> bool:
    if not token.allowed_networks:
        return True
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(network) for network in token.allowed_networks)


def token_authenticate(*, presented: str, client_address: str) -> DepositToken:
    """Return the token for a presented secret, or raise TokenRefused (audited when the
    token exists: a leaked token used from elsewhere is a security event)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise TokenRefused("The token is malformed.")
    token = DepositToken.objects.select_related("product").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.secret_sha256, _digest(parts[2])):
        raise TokenRefused("The token is not valid.")
    if token.revoked_at is not None:
        raise TokenRefused("The token was revoked.", token=token)
    if token.expires_at is not None and token.expires_at <= timezone.now():
        raise TokenRefused("The token has expired.", token=token)
    if not _network_allowed(token, client_address):
        audit_record(
            action="token.refused_network",
            actor_label=f"token:{token.prefix}",
            target=token,
            reason=f"request from {client_address} outside {', '.join(token.allowed_networks)}",
        )
        raise TokenRefused(
            f"This token may not be used from {client_address}.", token=token, status=403
        )
    DepositToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
