from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from accounts.forms import StaffLoginForm

# Each of these modules registers its models with the admin site.
from escrow import admin_invitations, admin_people, admin_seal, admin_tokens  # noqa: F401
from escrow.certificates import CERTIFIABLE_STATES
from escrow.models import Backup, BackupDrill, Deposit, DepositCopy, ReleaseClaim
from escrow.services.claims import claim_release_voluntarily_by_staff
from escrow.services.deposits import deposit_retry
from records.admin_helpers import ReadOnlyAdmin, ReadOnlyStateMixin, transition_action
from records.services.transitions import TransitionRefused

# Permissions follow from a user's role (see User.has_perm); groups would mean nothing.
admin.site.unregister(Group)
# A right password of a non-staff user counts as a failed sign-in (throttling).
admin.site.login_form = StaffLoginForm


class DepositCopyInline(admin.TabularInline):
    model = DepositCopy
    extra = 0
    can_delete = False
    readonly_fields = ("site", "kind", "key", "version_id", "sha256", "size", "verified_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Deposit)
class DepositAdmin(ReadOnlyStateMixin, admin.ModelAdmin):
    # Who works on an in-flight deposit and until when: a lease in the past is one the
    # sweeper takes over within a minute (docs/operations.md).
    list_display = (
        "product",
        "version",
        "state",
        "lease_owner",
        "lease_expires_at",
        "archive_size",
        "created_at",
    )
    # By date: today, the past 7 days, this month, this year, with no query to draw it.
    list_filter = ("state", "product", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("product",)
    search_fields = ("version", "=archive_sha256", "product__name")
    list_per_page = 50
    # Tens of thousands of deposits: no count of the whole table on every page.
    show_full_result_count = False
    inlines = (DepositCopyInline,)
    actions = (
        transition_action(
            deposit_retry, description="Retry failed deposits", object_argument="deposit"
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Deposit]:
        # The list shows none of the large JSON columns; the deposit's own page loads them.
        rows = super().get_queryset(request)
        match = request.resolver_match
        if request.method == "GET" and match and (match.url_name or "").endswith("changelist"):
            rows = rows.defer("manifest", "pipeline", "sealed_for", "manifest_signature")
        return rows

    def get_list_display(self, request: HttpRequest) -> Any:
        return (*super().get_list_display(request), "certificate")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*super().get_readonly_fields(request, obj), "certificate"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only: services move deposits, so the page has no Save

    @admin.display(description="Certificate")
    def certificate(self, deposit: Deposit) -> str:
        """A link to the deposit's certificate (a fresh, expiring download), once stored."""
        if deposit.state not in CERTIFIABLE_STATES:
            return "—"
        return format_html(
            '<a href="{}" aria-label="Certificate of {} {}">PDF</a>',
            reverse("certificate", args=[deposit.pk]),
            deposit.product,
            deposit.version,
        )


class ReasonActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Required for a voluntary release: the vendor's written instruction and why.",
    )


@admin.register(ReleaseClaim)
class ReleaseClaimAdmin(ReadOnlyStateMixin, admin.ModelAdmin):
    list_display = ("id", "claimant", "product", "condition", "state", "created_at")
    list_filter = (
        "state",
        "condition",
        "product",
        "claimant",
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("claimant", "product")
    search_fields = ("=id", "claimant__name", "product__name")
    list_per_page = 50
    show_full_result_count = False
    # Not transition_action: this action needs the staff user's stated reason, typed
    # next to the action menu; the service refuses an empty one.
    action_form = ReasonActionForm
    actions = ("release_voluntarily",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only: services move claims, so the page has no Save

    @admin.action(description="Release voluntarily on the vendor's written instruction")
    def release_voluntarily(self, request: HttpRequest, queryset: QuerySet[ReleaseClaim]) -> None:
        reason = request.POST.get("reason", "")
        done = 0
        for claim in queryset:
            try:
                claim_release_voluntarily_by_staff(
                    claim=claim,
                    actor=request.user,  # type: ignore[arg-type]
                    reason=reason,
                )
            except (TransitionRefused, PermissionDenied, ValidationError) as error:
                text = "; ".join(error.messages) if isinstance(error, ValidationError) else error
                self.message_user(request, f"{claim}: {text}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"Released voluntarily: {done} done.", messages.SUCCESS)


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    """Backups are made by the scheduled task or `manage.py backup run`; staff read."""

    list_display = ("created_at", "state", "size", "kept_by", "pruned_at", "problem")
    list_filter = ("state",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Backup._meta.fields]


@admin.register(BackupDrill)
class BackupDrillAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "backup", "ok", "problem")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in BackupDrill._meta.fields]
