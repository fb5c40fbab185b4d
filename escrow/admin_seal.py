"""Staff's admin for the seal recipients: they see every key, and may only propose.

The keys deposits are sealed for are read-only here. A change is proposed on
the "Seal recipient changes" page; it takes effect only when a notary approves
it in the notary portal with a fresh second-factor code."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from escrow.models import NotaryRecipient, SealRecipientChange
from escrow.services.seal_changes import (
    seal_change_propose,
    seal_change_validate,
    seal_change_withdraw,
)
from escrow.templatetags.age_keys import short_key
from records.admin_helpers import ReadOnlyStateMixin, transition_action
from vault.age import recipient_kind


@admin.register(NotaryRecipient)
class NotaryRecipientAdmin(admin.ModelAdmin):
    list_display = ("label", "kind", "notary", "key", "key_kind", "is_active", "created_at")
    list_filter = ("kind", "is_active")

    @admin.display(description="Public key")
    def key(self, obj: NotaryRecipient) -> str:
        return short_key(obj.public_key)

    @admin.display(description="Key kind")
    def key_kind(self, obj: NotaryRecipient) -> str:
        return recipient_kind(obj.public_key)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ProposalForm(forms.ModelForm):
    class Meta:
        model = SealRecipientChange
        fields = ("kind", "notary", "public_key", "label", "recipient", "reason")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("public_key", "label"):
            self.fields[name].required = False
        self.fields["recipient"].queryset = NotaryRecipient.objects.filter(is_active=True)  # type: ignore[attr-defined]

    def _post_clean(self) -> None:
        # The model's own validation runs in the service; here only the proposal's rules.
        data = self.cleaned_data
        try:
            seal_change_validate(
                kind=data.get("kind", ""),
                public_key=data.get("public_key") or "",
                label=data.get("label") or "",
                notary=data.get("notary"),
                recipient=data.get("recipient"),
            )
        except ValidationError as error:
            self.add_error(None, error)


@admin.register(SealRecipientChange)
class SealRecipientChangeAdmin(ReadOnlyStateMixin, admin.ModelAdmin):
    list_display = (
        "kind",
        "label",
        "key",
        "key_kind",
        "state",
        "proposed_by",
        "decided_by",
        "created_at",
    )
    list_filter = ("state", "kind")

    @admin.display(description="Public key")
    def key(self, obj: SealRecipientChange) -> str:
        return short_key(obj.public_key)

    @admin.display(description="Key kind")
    def key_kind(self, obj: SealRecipientChange) -> str:
        return recipient_kind(obj.public_key) if obj.public_key else "—"

    actions = (
        transition_action(
            seal_change_withdraw,
            description="Withdraw the selected proposals",
            object_argument="change",
        ),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return True  # staff propose; only a notary can make a proposal effective

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a proposal is read-only once made: withdraw it with the action

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ProposalForm
            kwargs["fields"] = ProposalForm.Meta.fields
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else super().get_readonly_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = form.cleaned_data
        proposed = seal_change_propose(
            kind=data["kind"],
            actor=request.user,  # type: ignore[arg-type]
            reason=data["reason"],
            public_key=data.get("public_key") or "",
            label=data.get("label") or "",
            notary=data.get("notary"),
            recipient=data.get("recipient"),
        )
        obj.pk = proposed.pk
