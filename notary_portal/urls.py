from __future__ import annotations

from django.urls import path

from notary_portal import views

app_name = "notary"

urlpatterns = [
    path("login/", views.NotaryLoginView.as_view(), name="login"),
    path("logout/", views.NotaryLogoutView.as_view(), name="logout"),
    path("verify/", views.verify, name="verify"),
    path("enrol/", views.enrol, name="enrol"),
    path("", views.dashboard, name="dashboard"),
    path("deposits/<int:deposit_id>/", views.deposit_detail, name="deposit"),
    path("deposits/<int:deposit_id>/acknowledge/", views.acknowledge, name="acknowledge"),
]
