"""Every door, one include each; docs/architecture.md maps each prefix to its code."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts.access import public
from escrow.api.openapi import schema_door

urlpatterns = [
    path("", public(RedirectView.as_view(url="/portal/", permanent=False)), name="home"),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("notary/", include("notary_portal.urls")),
    path("api/", include("escrow.api.urls")),
    path("api/schema/", public(schema_door), name="api-schema"),
    path("", include("escrow.urls")),
]

# Names the evidence limit when a request carries too many files (config/errors.py).
handler400 = "config.errors.bad_request"
