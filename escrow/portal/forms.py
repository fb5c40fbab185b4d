from __future__ import annotations

from typing import Any

from django import forms

from escrow.models import Product, ReleaseCondition, ReleaseKey
from escrow.services.evidence import Upload, read_upload
from escrow.validators import validate_age_recipient


class SubscribeForm(forms.Form):
    accept_terms = forms.BooleanField(
        required=True,
        label="We accept the escrow terms: a released deposit is for our own use only, to "
        "keep running and maintaining the licensed software, and is never resold or passed on.",
        error_messages={"required": "Accept the escrow terms to subscribe."},
    )


class ReleaseKeyForm(forms.Form):
    method = forms.ChoiceField(choices=ReleaseKey.Method.choices, widget=forms.RadioSelect)
    recipient = forms.CharField(
        required=False,
        max_length=100,
        help_text="The public key printed by age-keygen, starting with age1.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("method") == ReleaseKey.Method.RECIPIENT:
            recipient = (data.get("recipient") or "").strip()
            if not recipient:
                self.add_error("recipient", "Give the age recipient (age1...) to release to.")
            else:
                try:
                    validate_age_recipient(recipient)
                except forms.ValidationError as error:
                    if error.code == "private_key_given":
                        # The form is shown again: do not put the private key back in it.
                        self.data = {**self.data, "recipient": ""}
                    self.add_error("recipient", error)
                data["recipient"] = recipient
        return data


class ExportForm(forms.Form):
    accept_fee = forms.BooleanField(required=False)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (as Django's documentation shows)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return single(data, initial)


def uploads_from(files: list[Any]) -> list[Upload]:
    """Read uploaded files into memory, refusing one over the size limit as soon as it is."""
    return [read_upload(file, file.name) for file in files]


class ContestForm(forms.Form):
    statement = forms.CharField(
        widget=forms.Textarea, max_length=20_000, help_text="Why the release condition is not met."
    )
    documents = MultipleFileField(required=False, help_text="PDF, PNG or JPEG documents.")


class ClaimForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.none())
    condition = forms.ChoiceField(choices=ReleaseCondition.choices)
    statement = forms.CharField(
        widget=forms.Textarea, max_length=20_000, help_text="What happened, when, and how you know."
    )
    documents = MultipleFileField(
        required=False,
        help_text="Evidence: PDF, PNG or JPEG (a court ruling, a register extract, letters).",
    )

    def __init__(self, *args: Any, products: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = products  # type: ignore[attr-defined]


class EvidenceForm(forms.Form):
    documents = MultipleFileField()
