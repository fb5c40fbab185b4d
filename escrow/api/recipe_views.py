"""The product's build recipe, for a release pipeline holding the product's deposit token.

``PUT /api/v1/products/<slug>/build-recipe`` with the ``escrow.toml`` text as the raw
body sets the recipe used for the product's deposits whose archive keeps none (staff
set the same in the admin); ``GET`` answers it. The text is checked as the archive's
file would be: a bad one is answered 400 with the field and the problem, and nothing
is saved. A token touches its own product only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from escrow.api.openapi import DescribedAPIView, openapi
from escrow.models import DepositToken
from escrow.services.build_recipes import product_recipe_set
from vault.build_recipe import MAX_RECIPE_BYTES, RECIPE_FILE, RecipeError, parse_recipe
from verification.models import ProductBuildRecipe

API_TAGS = ["v1"]


class RecipeSerializer(serializers.Serializer):
    """The stored recipe: its text, what it says once checked, and who set it when."""

    product = serializers.CharField()
    text = serializers.CharField(help_text="The escrow.toml text, as it was set.")
    recipe = serializers.DictField(
        allow_null=True,
        help_text="The checked recipe (command, artefacts, time_limit_seconds, toolchain).",
    )
    problem = serializers.CharField(
        allow_blank=True,
        help_text="Why the stored text no longer passes the check, if it does not.",
    )
    updated_at = serializers.DateTimeField()


def _answer(stored: ProductBuildRecipe) -> dict[str, Any]:
    try:
        checked: dict[str, Any] | None = parse_recipe(stored.text, source="product").as_dict()
        problem = ""
    except RecipeError as error:  # a limit tightened since it was set
        checked, problem = None, str(error)
    return {
        "product": stored.product.slug,
        "text": stored.text,
        "recipe": checked,
        "problem": problem,
        "updated_at": stored.updated_at,
    }


def _own_product(request: Request, product_slug: str) -> DepositToken:
    token: Any = request.auth
    if token.product.slug != product_slug:
        raise PermissionDenied(f"This token is for {token.product.slug}, not {product_slug}.")
    return token


def _body_text(request: Request) -> str:
    """The raw body as UTF-8 text, read no further than the largest recipe allowed."""
    body = request._request.read(MAX_RECIPE_BYTES + 1)
    if len(body) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{RECIPE_FILE}: larger than {MAX_RECIPE_BYTES // 1024} KiB")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(f"{RECIPE_FILE}: not UTF-8 text") from None


class ProductRecipeView(DescribedAPIView):
    """GET or PUT the build recipe of the token's product."""

    @openapi(
        operation_id="build_recipe_get",
        tags=API_TAGS,
        summary="The product's build recipe",
        responses={
            200: RecipeSerializer,
            403: OpenApiResponse(description="The token is for another product."),
            404: OpenApiResponse(description="The product has no build recipe."),
        },
    )
    def get(self, request: Request, product_slug: str) -> Response:
        token = _own_product(request, product_slug)
        stored = (
            ProductBuildRecipe.objects.filter(product=token.product)
            .select_related("product")
            .first()
        )
        if stored is None:
            raise NotFound(
                f"{product_slug} has no build recipe; its archives' {RECIPE_FILE} is used."
            )
        return Response(RecipeSerializer(_answer(stored)).data)

    @openapi(
        operation_id="build_recipe_put",
        tags=API_TAGS,
        summary="Set the product's build recipe",
        description=(
            f"The body is the {RECIPE_FILE} text (TOML: [build] command, artefacts, "
            "time_limit; [toolchain]), at most 64 KiB of UTF-8. It is used for the "
            f"product's deposits whose archive keeps no {RECIPE_FILE}; it replaces the "
            "recipe set before. docs/verification.md describes the format."
        ),
        request={"application/toml": OpenApiTypes.STR},
        responses={
            200: OpenApiResponse(RecipeSerializer, "The recipe was checked and saved."),
            400: OpenApiResponse(
                description="The recipe is not valid: `detail` names the field and the problem; "
                "nothing was saved."
            ),
            401: OpenApiResponse(description="No valid token."),
            403: OpenApiResponse(description="The token is for another product or network."),
        },
    )
    def put(self, request: Request, product_slug: str) -> Response:
        token = _own_product(request, product_slug)
        try:
            stored = product_recipe_set(
                product=token.product, text=_body_text(request), actor=token
            )
        except RecipeError as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(RecipeSerializer(_answer(stored)).data)
