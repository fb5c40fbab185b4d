"""The deposit API: release pipelines deposit builds and follow their state."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from escrow.api.body import deposit_body
from escrow.api.openapi import DescribedAPIView, openapi
from escrow.api.serializers import DepositSerializer
from escrow.models import Deposit, DepositState
from escrow.services.intake import (
    INTAKE_FULL,
    SAFE_STATES,
    DepositConflict,
    DepositRefused,
    Received,
    deposit_receive,
)
from vault.keys import NoNotaryRecipient

PIPELINE_HEADER = re.compile(r"^HTTP_X_PIPELINE_([A-Z0-9_]{1,60})$")
#: When a pipeline should try a failed deposit again (``Retry-After``, seconds).
RETRY_AFTER_SECONDS = 60
#: The operations' OpenAPI tag: the API version in their paths (/api/v1/...), named
#: explicitly so it does not depend on which other paths the schema generator sees.
API_TAGS = ["v1"]


def _answer(received: Received) -> tuple[int, dict[str, str]]:
    """The status code (and headers) that claim no more than the deposit's real state:
    200 only when it was already safe in the primary site, 202 for work accepted or in
    progress (follow ``status_url``), 422 rejected, 507 a full intake folder, 503 any
    other failure (try again after ``Retry-After``)."""
    deposit = received.deposit
    if deposit.state == DepositState.REJECTED:
        return status.HTTP_422_UNPROCESSABLE_ENTITY, {}
    if deposit.state == DepositState.FAILED:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if deposit.problem.startswith(INTAKE_FULL):
            return status.HTTP_507_INSUFFICIENT_STORAGE, retry
        return status.HTTP_503_SERVICE_UNAVAILABLE, retry
    if received.outcome == "already" and deposit.state in SAFE_STATES:
        return status.HTTP_200_OK, {}
    return status.HTTP_202_ACCEPTED, {}


def _pipeline_metadata(request: Request) -> dict[str, str]:
    """``X-Pipeline-Commit: abc`` becomes ``{"commit": "abc"}``, and so on."""
    metadata = {}
    for header, value in request.META.items():
        match = PIPELINE_HEADER.match(header)
        if match:
            metadata[match.group(1).lower()] = str(value)
    return metadata


def _content_length(request: Request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class DepositUploadView(DescribedAPIView):
    """PUT a build's source archive as the raw request body."""

    @openapi(
        operation_id="deposit_put",
        tags=API_TAGS,
        summary="Deposit a build",
        description=(
            "The archive (tar, tar.gz, tar.xz, tar.bz2 or zip) is the raw request body. "
            "The same version with the same SHA-256 continues the existing deposit: 200 "
            "when it is already safe, 202 with its real state when it was resumed or is in "
            "progress; with another SHA-256 it is a conflict. Optional X-Pipeline-* headers "
            "(Commit, Build-Url, ...) are recorded in the signed manifest."
        ),
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "X-Archive-SHA256",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="SHA-256 of the body, 64 lower-case hex digits.",
            ),
            OpenApiParameter("X-Pipeline-Commit", str, OpenApiParameter.HEADER),
            OpenApiParameter("X-Pipeline-Build-Url", str, OpenApiParameter.HEADER),
        ],
        responses={
            202: OpenApiResponse(
                DepositSerializer,
                "Accepted, not yet complete: `state` says how far it is (normally stored; "
                "replication follows). Follow `status_url` until it is replicated.",
            ),
            200: OpenApiResponse(
                DepositSerializer, "This archive was already deposited and is stored."
            ),
            400: OpenApiResponse(description="The request is malformed; nothing was recorded."),
            401: OpenApiResponse(description="No valid token."),
            403: OpenApiResponse(description="The token is for another product or network."),
            409: OpenApiResponse(description="The version exists with other content."),
            422: OpenApiResponse(
                DepositSerializer, "The archive was rejected; `problem` says why."
            ),
            503: OpenApiResponse(
                DepositSerializer,
                "Storage failed (`state: failed`, `problem` says why) or no notary key; "
                "upload the same archive again after `Retry-After` seconds.",
            ),
            507: OpenApiResponse(
                DepositSerializer,
                "The intake folder is full; nothing was kept. Upload again after "
                "`Retry-After` seconds.",
            ),
        },
    )
    def put(self, request: Request, product_slug: str, version: str) -> Response:
        token: Any = request.auth
        if token.product.slug != product_slug:
            raise PermissionDenied(f"This token deposits {token.product.slug}, not {product_slug}.")
        try:
            received = deposit_receive(
                token=token,
                version=version,
                body=deposit_body(request._request),  # streams the body; never .body
                claimed_sha256=request.META.get("HTTP_X_ARCHIVE_SHA256", ""),
                content_length=_content_length(request),
                pipeline=_pipeline_metadata(request),
            )
        except DepositRefused as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_400_BAD_REQUEST)
        except DepositConflict as conflict:
            existing = DepositSerializer(conflict.existing, context={"request": request}).data
            return Response(
                {"detail": str(conflict), "existing": existing}, status=status.HTTP_409_CONFLICT
            )
        except NoNotaryRecipient as missing:
            return Response({"detail": str(missing)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        deposit = received.deposit
        deposit.refresh_from_db()
        answer, headers = _answer(received)
        return Response(
            DepositSerializer(deposit, context={"request": request}).data,
            status=answer,
            headers=headers,
        )


class DepositStatusView(DescribedAPIView):
    """GET the state of one of the token's product's deposits."""

    @openapi(
        operation_id="deposit_get",
        tags=API_TAGS,
        summary="A deposit's state",
        responses={200: DepositSerializer, 404: OpenApiResponse(description="Unknown")},
    )
    def get(self, request: Request, deposit_id: int) -> Response:
        token: Any = request.auth
        deposit = (
            Deposit.objects.filter(pk=deposit_id, product=token.product)
            .select_related("product")
            .prefetch_related("copies")
            .first()
        )
        if deposit is None:
            raise NotFound("No such deposit for this token's product.")
        return Response(DepositSerializer(deposit, context={"request": request}).data)
