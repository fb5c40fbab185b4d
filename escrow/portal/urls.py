from __future__ import annotations

from django.urls import path

from escrow.portal import views

app_name = "portal"

urlpatterns = [
    path("login/", views.CustomerLoginView.as_view(), name="login"),
    path("logout/", views.CustomerLogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("products/<slug:slug>/", views.product_detail, name="product"),
]
