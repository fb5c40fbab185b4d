"""The deposit API's schema generator side: the token's security scheme, the views'
descriptions applied, and the schema view.

Heavy (drf-spectacular's whole generator), so only escrow.api.openapi imports it,
when a schema is generated; see there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView


class DepositTokenScheme(OpenApiAuthenticationExtension):
    """Describes the token in the OpenAPI schema."""

    target_class = "escrow.api.authentication.DepositTokenAuthentication"
    name = "depositToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A product's deposit token: esc_<id>_<secret>, shown once at creation.",
        }


def describe(handler: Callable[..., Any], description: dict[str, Any]) -> None:
    """Apply ``extend_schema(**description)`` to a view's handler, once: drf-spectacular
    keeps the result in the handler's ``kwargs``, where its generator looks."""
    if "schema" not in getattr(handler, "kwargs", {}):
        extend_schema(**description)(handler)


#: The schema is public: it describes the API, not anyone's deposits.
schema_view = SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[])
