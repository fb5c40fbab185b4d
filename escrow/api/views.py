"""The deposit API: release pipelines deposit builds and follow their state."""

from __future__ import annotations

import re
from typing import Any, BinaryIO, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from escrow.api.serializers import DepositSerializer
from escrow.models import Deposit, DepositState
from escrow.services.intake import DepositConflict, DepositRefused, deposit_receive
from vault.keys import NoNotaryRecipient

PIPELINE_HEADER = re.compile(r"^HTTP_X_PIPELINE_([A-Z0-9_]{1,60})$")
STATUS_FOR_STATE = {
    DepositState.REJECTED: status.HTTP_422_UNPROCESSABLE_ENTITY,
    DepositState.FAILED: status.HTTP_503_SERVICE_UNAVAILABLE,
}


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


class DepositUploadView(APIView):
    """PUT a build's source archive as the raw request body."""

    @extend_schema(
        operation_id="deposit_put",
        summary="Deposit a build",
        description=(
            "The archive (tar, tar.gz, tar.xz, tar.bz2 or zip) is the raw request body. "
            "The same version with the same SHA-256 returns the existing deposit; with "
            "another SHA-256 it is a conflict. Optional X-Pipeline-* headers (Commit, "
            "Build-Url, ...) are recorded in the signed manifest."
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
                DepositSerializer, "Accepted: checked, sealed and stored; replication follows."
            ),
            200: OpenApiResponse(DepositSerializer, "This archive was already deposited."),
            400: OpenApiResponse(description="The request is malformed; nothing was recorded."),
            401: OpenApiResponse(description="No valid token."),
            403: OpenApiResponse(description="The token is for another product or network."),
            409: OpenApiResponse(description="The version exists with other content."),
            422: OpenApiResponse(
                DepositSerializer, "The archive was rejected; `problem` says why."
            ),
            503: OpenApiResponse(description="Storage failed or no notary key; retry later."),
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
                body=cast(BinaryIO, request._request),  # streams the body; never .body
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
        answer = STATUS_FOR_STATE.get(DepositState(deposit.state))
        if answer is None:
            answer = status.HTTP_202_ACCEPTED if received.created else status.HTTP_200_OK
        return Response(
            DepositSerializer(deposit, context={"request": request}).data, status=answer
        )


class DepositStatusView(APIView):
    """GET the state of one of the token's product's deposits."""

    @extend_schema(
        operation_id="deposit_get",
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
