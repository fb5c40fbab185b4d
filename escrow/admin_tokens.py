"""Deposit tokens in the admin: created through the service, the secret shown once."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import Product
from escrow.models import DepositToken
from escrow.services.tokens import normalise_networks, token_create, token_revoke


class TokenCreationForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.all())
    label = forms.CharField(max_length=100, help_text="Which pipeline uses it.")
    allowed_networks = forms.CharField(
        required=False,
        help_text="CIDR ranges the pipeline calls from, comma-separated; empty: anywhere.",
    )
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=3650)

    def clean_allowed_networks(self) -> list[str]:
        raw = self.cleaned_data["allowed_networks"]
        networks = [part.strip() for part in raw.split(",") if part.strip()]
        try:
            return normalise_networks(networks)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from error


@admin.register(DepositToken)
class DepositTokenAdmin(admin.ModelAdmin):
    list_display = (
        "label",
        "product",
        "prefix",
        "allowed_networks",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("product",)
    actions = ("revoke_tokens",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in DepositToken._meta.fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only once created: revoke it with the action instead

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the audit log keeps pointing at the token

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        form = TokenCreationForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            issued = token_create(
                product=form.cleaned_data["product"],
                label=form.cleaned_data["label"],
                allowed_networks=form.cleaned_data["allowed_networks"],
                expires_in_days=form.cleaned_data["expires_in_days"],
                actor=request.user,  # type: ignore[arg-type]
            )
            # The secret is in this one response only: not in a message (which would
            # travel in a cookie or rest in the session), not in a redirect.
            context = {
                **self.admin_site.each_context(request),
                "title": "Deposit token created",
                "opts": self.model._meta,
                "secret": issued.secret,
                "changelist": reverse("admin:escrow_deposittoken_changelist"),
            }
            return TemplateResponse(request, "admin/escrow/deposittoken/created.html", context)
        context = {
            **self.admin_site.each_context(request),
            "title": "Create a deposit token",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/escrow/deposittoken/create.html", context)

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[DepositToken]) -> None:
        staff: Any = request.user
        for token in queryset:
            token_revoke(token=token, actor=staff, reason="revoked in the admin")
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)
