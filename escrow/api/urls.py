from __future__ import annotations

from django.urls import path

from accounts.access import public
from escrow.api import key_views, log_views, recipe_views, views

app_name = "api"

urlpatterns = [
    path(
        "v1/products/<slug:product_slug>/deposits/<str:version>",
        views.DepositUploadView.as_view(),
        name="deposit-upload",
    ),
    path("v1/deposits/<int:deposit_id>", views.DepositStatusView.as_view(), name="deposit-status"),
    path(
        "v1/products/<slug:product_slug>/build-recipe",
        recipe_views.ProductRecipeView.as_view(),
        name="build-recipe",
    ),
    path(
        "v1/keys/allowed_signers",
        public(key_views.allowed_signers),
        name="allowed-signers",
    ),
    path("v1/log/checkpoint", public(log_views.checkpoint), name="log-checkpoint"),
    path(
        "v1/log/proof/inclusion",
        public(log_views.inclusion_proof),
        name="log-inclusion-proof",
    ),
    path(
        "v1/log/proof/consistency",
        public(log_views.consistency_proof),
        name="log-consistency-proof",
    ),
]
