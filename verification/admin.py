"""Build verification in the admin: the records are read-only (the system writes them);
a product's build recipe is set by staff, checked as an archive's escrow.toml would be."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from records.admin_helpers import AuditedAdmin, ReadOnlyAdmin
from vault.build_recipe import RecipeError, parse_recipe
from verification.models import BuildVerification, ProductBuildRecipe


@admin.register(BuildVerification)
class BuildVerificationAdmin(ReadOnlyAdmin):
    list_display = (
        "deposit_id",
        "product",
        "state",
        "exit_code",
        "duration_seconds",
        "finished_at",
    )
    list_filter = ("state",)
    search_fields = ("=deposit_id",)
    readonly_fields: ClassVar = [field.name for field in BuildVerification._meta.fields]


class ProductBuildRecipeForm(forms.ModelForm):
    class Meta:
        model = ProductBuildRecipe
        fields: ClassVar = ["product", "text"]
        widgets: ClassVar = {"text": forms.Textarea(attrs={"rows": 14, "cols": 80})}

    def clean_text(self) -> str:
        text: str = self.cleaned_data["text"]
        try:
            parse_recipe(text, source="product")
        except RecipeError as error:
            raise forms.ValidationError(str(error)) from None
        return text


@admin.register(ProductBuildRecipe)
class ProductBuildRecipeAdmin(AuditedAdmin):
    form = ProductBuildRecipeForm
    list_display = ("product", "updated_by", "updated_at")
    readonly_fields = ("updated_by", "updated_at")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The form has checked the text with parse_recipe; AuditedAdmin audits the save.
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
