"""The deposit API's OpenAPI description, loaded only when a schema is generated.

drf-spectacular's ``extend_schema`` decorator, its extensions and its schema view
all import its schema generator (``drf_spectacular.openapi``, and through
``drf_spectacular.plumbing`` also ``django.test``, jinja2 and unittest): about
5 MiB in every web worker, which serves deposits and never needs it. So the
views record their descriptions with ``openapi`` here, and escrow.api.schema
(the generator's side) is imported only when DRF's schema inspector is read,
which only schema generation does: the /api/schema/ door (``schema_door``),
``manage.py spectacular`` and drf-spectacular's ``check --deploy``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.schemas import DefaultSchema
from rest_framework.schemas.inspectors import ViewInspector
from rest_framework.views import APIView

Handler = TypeVar("Handler", bound=Callable[..., Any])
#: The attribute of a view's handler that holds its ``openapi`` description.
DESCRIPTION = "openapi_description"


def openapi(**description: Any) -> Callable[[Handler], Handler]:
    """Describe a view's handler with drf-spectacular's ``extend_schema`` arguments,
    applied by escrow.api.schema when a schema is generated, not on import."""

    def record(handler: Handler) -> Handler:
        setattr(handler, DESCRIPTION, description)
        return handler

    return record


class DescribedOnDemand(DefaultSchema):
    """DRF's per-view schema inspector (settings' DEFAULT_SCHEMA_CLASS), which only schema
    generation reads: reading it first applies the view's ``openapi`` descriptions and
    registers the token's security scheme (escrow.api.schema)."""

    def __get__(self, instance: Any, owner: Any) -> ViewInspector:
        from escrow.api.schema import describe

        for name in owner.http_method_names:
            handler = getattr(owner, name, None)
            if handler is not None and hasattr(handler, DESCRIPTION):
                describe(handler, getattr(handler, DESCRIPTION))
        return super().__get__(instance, owner)


class DescribedAPIView(APIView):
    """A view of the deposit API whose handlers are described with ``openapi``."""

    schema = DescribedOnDemand()


@csrf_exempt
def schema_door(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """/api/schema/: drf-spectacular's schema view, imported on the first request for it."""
    from escrow.api.schema import schema_view

    return cast(HttpResponse, schema_view(request, *args, **kwargs))
