from __future__ import annotations

from django.urls import path

from notary_portal import claims, colleagues, lists, notifications, seal_changes, views, witness

app_name = "notary"

urlpatterns = [
    path("login/", views.NotaryLoginView.as_view(), name="login"),
    path("logout/", views.NotaryLogoutView.as_view(), name="logout"),
    path("verify/", views.verify, name="verify"),
    path("enrol/", views.enrol, name="enrol"),
    path("", views.dashboard, name="dashboard"),
    path("deposits/", lists.deposits, name="deposits"),
    path("deposits/<int:deposit_id>/", views.deposit_detail, name="deposit"),
    path("deposits/<int:deposit_id>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("claims/", lists.claims, name="claims"),
    path("claims/<int:claim_id>/", claims.claim_detail, name="claim"),
    path("claims/<int:claim_id>/decide/", claims.decide, name="decide"),
    path(
        "claims/<int:claim_id>/evidence/<int:evidence_id>/",
        claims.claim_evidence,
        name="claim-evidence",
    ),
    path("notifications/", notifications.notifications, name="notifications"),
    path("identity/", claims.store_identity, name="identity"),
    path("witness/", witness.witness_key, name="witness"),
    path("safe-export/", claims.safe_export, name="safe-export"),
    path("seal-changes/", seal_changes.seal_changes, name="seal-changes"),
    path("colleagues/", colleagues.colleagues, name="colleagues"),
    path(
        "colleagues/<int:user_id>/recover/",
        colleagues.colleague_recover,
        name="colleague-recover",
    ),
    path(
        "seal-changes/<int:change_id>/decide/",
        seal_changes.seal_change_decide,
        name="seal-change-decide",
    ),
]
