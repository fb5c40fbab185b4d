"""Recovering another notary's access: a fresh code from the helping notary's own
authenticator resets the colleague's authenticator or gives a one-time password."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.access import notary_required
from accounts.models import Role, User
from escrow.services.notary_recovery import notary_authenticator_reset, notary_password_reset


class RecoveryForm(forms.Form):
    ACTIONS = (
        ("authenticator", "Reset the authenticator (they enrol a new one)"),
        ("password", "Give a one-time password (hand it over in person)"),
    )

    action = forms.ChoiceField(choices=ACTIONS, widget=forms.RadioSelect)
    token = forms.RegexField(
        regex=r"^\d{6}$",
        label="A new code from your own authenticator app",
        error_messages={"invalid": "The code is six digits."},
    )


def _colleagues(notary: Any) -> Any:
    return User.objects.filter(role=Role.NOTARY).exclude(pk=notary.pk).order_by("email")


@notary_required
def colleagues(request: HttpRequest) -> HttpResponse:
    context = {"colleagues": _colleagues(request.user), "form": RecoveryForm()}
    return render(request, "notary/colleagues.html", context)


@never_cache
@notary_required
@require_POST
def colleague_recover(request: HttpRequest, user_id: int) -> HttpResponse:
    helper: Any = request.user
    colleague = get_object_or_404(_colleagues(helper), pk=user_id)
    form = RecoveryForm(request.POST)
    if form.is_valid():
        token = form.cleaned_data["token"]
        try:
            if form.cleaned_data["action"] == "authenticator":
                notary_authenticator_reset(helper=helper, colleague=colleague, token=token)
            else:
                password = notary_password_reset(helper=helper, colleague=colleague, token=token)
                # Shown in this response only: never stored, never in a message cookie.
                context = {"colleague": colleague, "password": password}
                return render(request, "notary/colleague_password.html", context)
        except PermissionDenied as error:
            form.add_error("token", str(error))
        else:
            messages.success(request, f"{colleague.full_name} enrols a new authenticator.")
            return redirect("notary:colleagues")
    context = {"colleagues": _colleagues(helper), "form": form, "focus": colleague.pk}
    return render(request, "notary/colleagues.html", context, status=400)
