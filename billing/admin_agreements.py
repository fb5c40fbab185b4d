"""Staff read the escrow agreement's versions and every acceptance (who, for which
organisation, when, from which address). Both are read-only: a version is published
by a migration from the text shipped in billing/agreement_texts/, and an acceptance
is recorded only by subscribing (billing.agreements.agreement_accept)."""

from __future__ import annotations

from django.contrib import admin

from billing.models import AgreementAcceptance, EscrowAgreement
from records.admin_helpers import ReadOnlyAdmin


@admin.register(EscrowAgreement)
class EscrowAgreementAdmin(ReadOnlyAdmin):
    list_display = ("version", "title", "published_at", "is_current")
    fields = ("version", "title", "published_at", "is_current", "text")


@admin.register(AgreementAcceptance)
class AgreementAcceptanceAdmin(ReadOnlyAdmin):
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
