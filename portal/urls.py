from __future__ import annotations

from django.urls import path

from portal import account, agreement, claims, notifications, passwords, people, views

app_name = "portal"

urlpatterns = [
    path("login/", views.CustomerLoginView.as_view(), name="login"),
    path("logout/", views.CustomerLogoutView.as_view(), name="logout"),
    path(
        "password/reset/",
        passwords.CustomerPasswordResetView.as_view(),
        name="password-reset",
    ),
    path(
        "password/reset/sent/",
        passwords.CustomerPasswordResetDoneView.as_view(),
        name="password-reset-done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        passwords.CustomerPasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path(
        "password/reset/done/",
        passwords.CustomerPasswordResetCompleteView.as_view(),
        name="password-reset-complete",
    ),
    path(
        "password/change/",
        passwords.CustomerPasswordChangeView.as_view(),
        name="password-change",
    ),
    path(
        "password/change/done/",
        passwords.CustomerPasswordChangeDoneView.as_view(),
        name="password-change-done",
    ),
    path("", views.dashboard, name="dashboard"),
    path("account/", people.account, name="account"),
    path("colleagues/", people.colleagues, name="colleagues"),
    path(
        "colleagues/<int:user_id>/remove/",
        people.colleague_remove_view,
        name="colleague-remove",
    ),
    path(
        "invitations/<int:invitation_id>/revoke/",
        people.invitation_revoke_view,
        name="invitation-revoke",
    ),
    path("invitation/<str:token>/", people.invitation, name="invitation"),
    path("agreement/", agreement.agreement, name="agreement"),
    path(
        "agreement/<int:agreement_version>/pdf/",
        agreement.agreement_pdf,
        name="agreement-pdf",
    ),
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
    path("release-key/release-key.age", account.release_key_file, name="release-key-file"),
    path("exports/", account.exports, name="exports"),
    path("exports/<int:export_id>/download/", account.export_download, name="export-download"),
    path("notifications/", notifications.notifications, name="notifications"),
    path("claims/", claims.claims, name="claims"),
    path("claims/<int:claim_id>/", claims.claim_detail, name="claim"),
    path("claims/<int:claim_id>/evidence/", claims.claim_add_evidence, name="claim-add-evidence"),
    path(
        "claims/<int:claim_id>/evidence/<int:evidence_id>/",
        claims.claim_evidence,
        name="claim-evidence",
    ),
    path("claims/<int:claim_id>/withdraw/", claims.claim_withdraw_view, name="claim-withdraw"),
    path("claims/<int:claim_id>/download/", claims.claim_download, name="claim-download"),
    path("claims/<int:claim_id>/letter/", claims.claim_letter, name="claim-letter"),
]
