from __future__ import annotations

from typing import Any

from django.contrib.auth.forms import AuthenticationForm

from accounts.models import Role


class RoleLoginForm(AuthenticationForm):
    """Password login for one portal. A valid password for another role is
    refused with the same message as a wrong password, so the form does not
    tell an attacker which accounts exist or which passwords are right."""

    role: Role

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if user.role != self.role:
            raise self.get_invalid_login_error()
