from __future__ import annotations

from django.urls import path

from escrow.portal import account, views

app_name = "portal"

urlpatterns = [
    path("login/", views.CustomerLoginView.as_view(), name="login"),
    path("logout/", views.CustomerLogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("products/<slug:slug>/", views.product_detail, name="product"),
    path("licences/<int:licence_id>/subscribe/", account.subscribe, name="subscribe"),
    path(
        "subscriptions/<int:subscription_id>/cancel/",
        account.cancel_subscription,
        name="cancel-subscription",
    ),
    path("invoices/", account.invoices, name="invoices"),
    path("invoices/<str:number>/pdf/", account.invoice_pdf, name="invoice-pdf"),
    path("release-key/", account.release_key, name="release-key"),
    path("exports/", account.exports, name="exports"),
    path("exports/<int:export_id>/download/", account.export_download, name="export-download"),
]
