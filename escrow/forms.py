from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from escrow.models import Role


class RoleLoginForm(AuthenticationForm):
    """Password login for one portal. A valid password for another role is
    refused with the same message as a wrong password, so the form does not
    tell an attacker which accounts exist or which passwords are right."""

    role: Role

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if user.role != self.role:
            raise self.get_invalid_login_error()


class CustomerLoginForm(RoleLoginForm):
    role = Role.CUSTOMER


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
