"""Signed-link doors of the escrow app: file downloads and the vendor's claim page.

These are shared by both portals (a link made in either is checked here) and by
the vendor, who has no account: the signed link is the credential."""

from __future__ import annotations

from django.urls import path

from escrow.views import downloads, vendor

urlpatterns = [
    path("deposits/<int:deposit_id>/certificate/", downloads.certificate, name="certificate"),
    path(
        "files/certificate/<str:token>/",
        downloads.certificate_download,
        name="certificate-download",
    ),
    path("files/release/<str:token>/", downloads.release_download, name="release-download"),
    path("files/evidence/<str:token>/", downloads.evidence_download, name="evidence-download"),
    path("files/<str:token>/", downloads.file_download, name="file-download"),
    path("vendor/claims/<str:token>/", vendor.vendor_claim, name="vendor-claim"),
    path(
        "vendor/claims/<str:token>/evidence/<int:evidence_id>/",
        vendor.vendor_evidence,
        name="vendor-evidence",
    ),
]
