"""Staff read the escrow agreement's versions and every acceptance (who, for which
organisation, when, from which address). Both are read-only: a version is published
by a migration from the text shipped in billing/agreement_texts/, and an acceptance
is recorded only by subscribing (billing.agreements.agreement_accept)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import AgreementAcceptance, EscrowAgreement


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(EscrowAgreement)
class EscrowAgreementAdmin(_ReadOnly):
    list_display = ("version", "title", "published_at", "is_current")
    fields = ("version", "title", "published_at", "is_current", "text")


@admin.register(AgreementAcceptance)
class AgreementAcceptanceAdmin(_ReadOnly):
    list_display = (
        "organisation",
        "version",
        "accepted_by",
        "accepted_at",
        "ip_address",
        "subscription",
    )
    list_filter = ("agreement__version",)
    search_fields = ("organisation__name", "accepted_by__email")
    list_select_related = ("organisation", "agreement", "accepted_by", "subscription__licence")
    date_hierarchy = "accepted_at"

    @admin.display(description="Version", ordering="agreement__version")
    def version(self, acceptance: AgreementAcceptance) -> int:
        return acceptance.agreement.version
