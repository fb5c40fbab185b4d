"""Staff read customers' invitations of colleagues: who invited which address, when it
expires and what became of it. Read-only: invitations are sent, accepted and revoked
in the customer portal (escrow.services.people); the token's hash is never shown."""

from __future__ import annotations

from django.contrib import admin

from accounts.models import Invitation
from records.admin_helpers import ReadOnlyAdmin


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ("email", "organisation", "invited_by", "created_at", "expires_at", "status")
    search_fields = ("email", "organisation__name")
    list_select_related = ("organisation", "invited_by")
    exclude = ("token_sha256",)

    @admin.display(description="Status")
    def status(self, invitation: Invitation) -> str:
        return invitation.state_label
