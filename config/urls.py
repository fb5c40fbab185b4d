from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from escrow.access import public
from escrow.portal import files, vendor

urlpatterns = [
    path("", public(RedirectView.as_view(url="/portal/", permanent=False)), name="home"),
    path("admin/", admin.site.urls),
    path("portal/", include("escrow.portal.urls")),
    path("notary/", include("notary_portal.urls")),
    path("api/", include("escrow.api.urls")),
    path("deposits/<int:deposit_id>/certificate/", files.certificate, name="certificate"),
    path("files/certificate/<str:token>/", files.certificate_download, name="certificate-download"),
    path("files/release/<str:token>/", files.release_download, name="release-download"),
    path("files/evidence/<str:token>/", files.evidence_download, name="evidence-download"),
    path("files/<str:token>/", files.file_download, name="file-download"),
    path("vendor/claims/<str:token>/", vendor.vendor_claim, name="vendor-claim"),
    path(
        "vendor/claims/<str:token>/evidence/<int:evidence_id>/",
        vendor.vendor_evidence,
        name="vendor-evidence",
    ),
    path(
        "api/schema/",
        public(SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[])),
        name="api-schema",
    ),
]
