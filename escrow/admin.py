from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.http import HttpRequest

from accounts.models import Organisation, Product, User
from escrow import admin_tokens  # noqa: F401  (registers the deposit-token admin)
from escrow.models import Backup, BackupDrill, Deposit, DepositCopy, NotaryRecipient, ReleaseClaim
from escrow.services.deposits import deposit_retry
from records.admin_helpers import AuditedAdmin, ReadOnlyStateMixin, transition_action
from records.models import AuditEntry

admin.site.site_header = "Software Escrow — staff"
admin.site.site_title = "Software Escrow staff"
# Staff have no customer-portal page to go back to.
admin.site.site_url = None
# Permissions follow from a user's role (see User.has_perm); groups would mean nothing.
admin.site.unregister(Group)


@admin.register(Organisation)
class OrganisationAdmin(AuditedAdmin):
    list_display = ("name", "kind", "country", "contact_email")
    list_filter = ("kind",)
    search_fields = ("name",)


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name", "role", "organisation")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "full_name", "role", "organisation", "is_active")


@admin.register(User)
class UserAdmin(DjangoUserAdmin, AuditedAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    list_display = ("email", "full_name", "role", "organisation", "is_active")
    search_fields = ("email", "full_name")
    ordering = ("email",)
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Person", {"fields": ("full_name", "role", "organisation", "is_active")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {"fields": ("email", "full_name", "role", "organisation", "password1", "password2")},
        ),
    )
    readonly_fields = ("last_login", "date_joined")
    filter_horizontal = ()
    list_filter = ("role", "is_active")


@admin.register(Product)
class ProductAdmin(AuditedAdmin):
    list_display = ("name", "slug", "vendor")
    prepopulated_fields: ClassVar = {"slug": ("name",)}


@admin.register(NotaryRecipient)
class NotaryRecipientAdmin(AuditedAdmin):
    list_display = ("label", "notary", "public_key", "is_active")
    list_filter = ("is_active",)


class DepositCopyInline(admin.TabularInline):
    model = DepositCopy
    extra = 0
    can_delete = False
    readonly_fields = ("site", "kind", "key", "version_id", "sha256", "size", "verified_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Deposit)
class DepositAdmin(ReadOnlyStateMixin, admin.ModelAdmin):
    list_display = ("product", "version", "state", "archive_size", "created_at")
    list_filter = ("state", "product")
    search_fields = ("version", "archive_sha256")
    inlines = (DepositCopyInline,)
    actions = (
        transition_action(
            deposit_retry, description="Retry failed deposits", object_argument="deposit"
        ),
    )


@admin.register(ReleaseClaim)
class ReleaseClaimAdmin(ReadOnlyStateMixin, admin.ModelAdmin):
    list_display = ("id", "claimant", "product", "condition", "state", "created_at")
    list_filter = ("state", "condition")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = (
        "sequence",
        "created_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "from_state",
        "to_state",
    )
    list_filter = ("action",)
    search_fields = ("actor_label", "action", "object_id", "reason")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    """Backups are made by the scheduled task or `manage.py backup run`; staff read."""

    list_display = ("created_at", "state", "size", "kept_by", "pruned_at", "problem")
    list_filter = ("state",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Backup._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BackupDrill)
class BackupDrillAdmin(admin.ModelAdmin):
    list_display = ("created_at", "backup", "ok", "problem")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in BackupDrill._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
