"""Staff's admin for organisations, users and products, with the notary kept out of reach.

Staff run the service but must never become, impersonate or weaken a notary
(docs/security.md): they cannot create a notary, give anyone the notary role,
or change a notary's e-mail, password or active flag, and they see no
second-factor secrets (the TOTP device admin is not registered)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Organisation, Product, Role, User
from records.admin_helpers import AuditedAdmin

# Nobody reads or edits a second-factor secret in the admin: not staff, not a
# superuser. A notary's lost authenticator is reset by another notary.
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)

ROLES_STAFF_MAY_GIVE = [
    (Role.CUSTOMER.value, Role.CUSTOMER.label),
    (Role.STAFF.value, Role.STAFF.label),
]


@admin.register(Organisation)
class OrganisationAdmin(AuditedAdmin):
    list_display = ("name", "kind", "country", "time_zone", "contact_email")
    list_filter = ("kind",)
    search_fields = ("name",)


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name", "role", "organisation")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = ROLES_STAFF_MAY_GIVE  # type: ignore[attr-defined]


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "full_name",
            "role",
            "organisation",
            "is_organisation_admin",
            "is_active",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "role" in self.fields:
            self.fields["role"].choices = ROLES_STAFF_MAY_GIVE  # type: ignore[attr-defined]


@admin.register(User)
class UserAdmin(DjangoUserAdmin, AuditedAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    list_display = (
        "email",
        "full_name",
        "role",
        "organisation",
        "is_organisation_admin",
        "is_active",
    )
    search_fields = ("email", "full_name")
    ordering = ("email",)
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (
            "Person",
            {"fields": ("full_name", "role", "organisation", "is_organisation_admin", "is_active")},
        ),
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
    list_filter = ("role", "is_organisation_admin", "is_active")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None and obj.role == Role.NOTARY:
            # A notary is shown, never changed here: not the e-mail a reset would go
            # to, not the role, not the active flag.
            return [name for _, options in self.fieldsets for name in options["fields"]]
        return super().get_readonly_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        target = self.get_object(request, id)
        if target is None:
            raise Http404("No such user.")
        if target.role == Role.NOTARY:
            raise PermissionDenied("Staff cannot set a notary's password.")
        return super().user_change_password(request, id, form_url)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The forms offer no notary role and lock a notary's fields; this refuses a
        # crafted POST that tries anyway, before anything is saved.
        before = User.objects.filter(pk=obj.pk).values_list("role", flat=True).first()
        if Role.NOTARY in (obj.role, before):
            raise PermissionDenied("Staff cannot create or change a notary.")
        super().save_model(request, obj, form, change)


@admin.register(Product)
class ProductAdmin(AuditedAdmin):
    list_display = ("name", "slug", "vendor")
    prepopulated_fields: ClassVar = {"slug": ("name",)}
