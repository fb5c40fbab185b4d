from __future__ import annotations

from django.urls import path

from escrow.api import views

app_name = "api"

urlpatterns = [
    path(
        "v1/products/<slug:product_slug>/deposits/<str:version>",
        views.DepositUploadView.as_view(),
        name="deposit-upload",
    ),
    path("v1/deposits/<int:deposit_id>", views.DepositStatusView.as_view(), name="deposit-status"),
]
