"""Bearer-token authentication for release pipelines (DRF).

Its OpenAPI description (``DepositTokenScheme``) is in escrow.api.schema, loaded
only when a schema is generated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from escrow.models import DepositToken
from escrow.services.tokens import TokenRefused, token_authenticate


@dataclass(frozen=True)
class PipelineClient:
    """``request.user`` for an API call: a release pipeline holding one product's token."""

    token: DepositToken
    is_authenticated: bool = True
    is_active: bool = True

    def __str__(self) -> str:
        return f"token:{self.token.prefix}"


def client_address(request: HttpRequest) -> str:
    """The caller's address. Behind ESCROW_TRUSTED_PROXIES proxies, the address the
    outermost trusted proxy saw; a client cannot spoof it with its own header."""
    proxies = settings.ESCROW_TRUSTED_PROXIES
    if proxies:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return str(request.META.get("REMOTE_ADDR", ""))


class DepositTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[PipelineClient, DepositToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, presented = header.partition(" ")
        if scheme != self.keyword or not presented.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <deposit token>'.")
        try:
            token = token_authenticate(
                presented=presented.strip(), client_address=client_address(request._request)
            )
        except TokenRefused as refused:
            if refused.status == 403:
                raise exceptions.PermissionDenied(str(refused)) from refused
            raise exceptions.AuthenticationFailed(str(refused)) from refused
        return PipelineClient(token=token), token

    def authenticate_header(self, request: Any) -> str:
        return f'{self.keyword} realm="deposits"'
