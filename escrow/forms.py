"""Upload fields shared by every door that takes evidence (customer portal, vendor link)."""

from __future__ import annotations

from typing import Any

from django import forms

from escrow.services.evidence import Upload, read_upload


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
