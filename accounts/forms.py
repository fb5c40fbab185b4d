from __future__ import annotations

from typing import Any

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm

from accounts.models import Role


def count_refused_sign_in(form: AuthenticationForm) -> None:
    """Count a right password refused at this door as a failed sign-in for the
    throttling (django-axes listens to ``user_login_failed``). Were it not counted,
    the one guess that does not bring a lock-out nearer would be the right one."""
    user_login_failed.send(
        sender=__name__,
        credentials={"username": form.cleaned_data.get("username")},
        request=form.request,
    )


def ask_for_an_email_address(form: AuthenticationForm) -> None:
    """People sign in with their e-mail address: say so to the browser (the keyboard on a
    phone, autofill, a screen reader), not as the plain text field Django gives."""
    widget = form.fields["username"].widget
    widget.input_type = "email"
    widget.attrs.update({"autocomplete": "email", "inputmode": "email"})


class RoleLoginForm(AuthenticationForm):
    """Password login for one portal. A valid password for another role is
    refused with the same message as a wrong password, so the form does not
    tell an attacker which accounts exist or which passwords are right; it
    counts as a failed sign-in too."""

    role: Role

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ask_for_an_email_address(self)

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if user.role != self.role:
            count_refused_sign_in(self)
            raise self.get_invalid_login_error()


class StaffLoginForm(OTPAdminAuthenticationForm):
    """The admin's sign-in (``admin.site.login_form``): django-otp's admin form, which
    asks for a code from the staff member's authenticator as well as the password,
    refuses anyone but staff with the wrong-password message, and counts that
    refusal as a failed sign-in like the portals do."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ask_for_an_email_address(self)

    def confirm_login_allowed(self, user: Any) -> None:
        try:
            super().confirm_login_allowed(user)
        except ValidationError:
            count_refused_sign_in(self)
            raise

    def _chosen_device(self, user: Any) -> Any:
        # django-otp asks which device a code is from; staff have one authenticator
        # (manage.py staff_totp), so that one is meant when none is chosen.
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True))
            if len(devices) == 1:
                return devices[0]
        return device
