"""Forms of the customer's account page, the colleagues page and the invitation."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation

from portal.forms import SubscribeForm


class AccountForm(forms.Form):
    full_name = forms.CharField(label="Your name", max_length=200)
    email = forms.EmailField(
        label="E-mail address",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        help_text="You sign in with it, and notices and password-reset links go to it.",
    )
    current_password = forms.CharField(
        label="Current password (needed only to change your e-mail address)",
        required=False,
        strip=False,
        max_length=1000,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="Colleague's e-mail address",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    as_admin = forms.BooleanField(
        required=False,
        label="Make them an admin too: they can invite and remove colleagues",
    )


class InvitationAcceptForm(forms.Form):
    full_name = forms.CharField(
        label="Your name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    password1 = forms.CharField(
        label="Choose a password",
        strip=False,
        max_length=1000,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="The same password again",
        strip=False,
        max_length=1000,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


class AgreementSubscribeForm(SubscribeForm):
    """The subscribe form, whose checkbox accepts one version of the escrow agreement:
    the version shown travels with the form, so a version published in between is
    shown to the customer rather than accepted unread."""

    agreement_version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, version: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("agreement_version", version)
        accept = self.fields["accept_terms"]
        accept.label = f"I have read and accept the Escrow Agreement version {version}"
        accept.error_messages["required"] = (
            "Accept the escrow terms to subscribe. Tick the box to accept the Escrow "
            f"Agreement version {version}."
        )
