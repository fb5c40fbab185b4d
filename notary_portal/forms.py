from __future__ import annotations

from typing import Any

from django import forms

from accounts.forms import RoleLoginForm
from accounts.models import Role


class DecisionForm(forms.Form):
    """One form for the notary's three steps; every one needs written reasons."""

    ACTIONS = (
        ("request_evidence", "Ask for more evidence"),
        ("reject", "Reject the claim"),
        ("approve", "Approve the release"),
    )
    action = forms.ChoiceField(choices=ACTIONS, widget=forms.RadioSelect)
    reasons = forms.CharField(
        widget=forms.Textarea,
        max_length=20_000,
        help_text="Written reasons; the claimant sees them.",
    )
    identity = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"autocomplete": "off", "rows": 3}),
        help_text="To approve: paste your age identity (AGE-SECRET-KEY-1... or "
        "AGE-SECRET-KEY-PQ-1...), or upload it, "
        "or unlock your stored identity with its passphrase. It is used for this request only.",
    )
    identity_file = forms.FileField(required=False)
    passphrase = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "approve" and not (
            data.get("identity") or data.get("identity_file") or data.get("passphrase")
        ):
            raise forms.ValidationError(
                "Approving needs your identity: paste it, upload it, or give the passphrase "
                "of your stored identity."
            )
        return data


class StoreIdentityForm(forms.Form):
    identity = forms.CharField(widget=forms.Textarea(attrs={"autocomplete": "off", "rows": 3}))
    passphrase = forms.CharField(widget=forms.PasswordInput, min_length=12)
    passphrase_again = forms.CharField(widget=forms.PasswordInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("passphrase") != data.get("passphrase_again"):
            self.add_error("passphrase_again", "The two passphrases differ.")
        return data


class NotaryLoginForm(RoleLoginForm):
    role = Role.NOTARY


class TotpForm(forms.Form):
    token = forms.CharField(
        label="Six-digit code from your authenticator app",
        min_length=6,
        max_length=6,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].strip()
        if not token.isdigit():
            raise forms.ValidationError("The code is six digits.")
        return token
