"""Upload fields shared by every door that takes evidence (customer portal, vendor link)."""

from __future__ import annotations

from typing import Any

from django import forms

from escrow.services.evidence import Upload, check_count, read_upload


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
            check_count(len(data))  # before any file is looked at
            return [single(item, initial) for item in data]
        return single(data, initial)


def uploads_from(files: list[Any]) -> list[Upload]:
    """The uploaded files as uploads, never read into memory: the count is refused
    before any file is read, each file as soon as counting it in chunks passes the
    size limit. (Django refuses more than DATA_UPLOAD_MAX_NUMBER_FILES files while
    parsing the request, before this runs; larger files wait in temporary files.)"""
    check_count(len(files))
    return [read_upload(file, file.name) for file in files]


class ContestForm(forms.Form):
    statement = forms.CharField(
        widget=forms.Textarea, max_length=20_000, help_text="Why the release condition is not met."
    )
    documents = MultipleFileField(required=False, help_text="PDF, PNG or JPEG documents.")


class VoluntaryReleaseForm(forms.Form):
    """The vendor's own decision to release, with its written statement."""

    prefix = "voluntary"
    statement = forms.CharField(
        widget=forms.Textarea,
        max_length=20_000,
        label="Written statement",
        help_text="That you release the deposit of your own will, and why; the notary reads it.",
    )
