"""Deny-by-default access for the portals: every view names the role it serves."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse

from accounts.models import Role

View = Callable[..., HttpResponseBase]


def customer_required(view: View) -> View:
    """Only signed-in customer users; anyone else signed in gets 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user: Any = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("portal:login"))
        if user.role != Role.CUSTOMER:
            raise PermissionDenied("The customer portal is for customer users.")
        return view(request, *args, **kwargs)

    return wrapper


def notary_password_checked(view: View) -> View:
    """A notary who has given the password but not necessarily the second factor yet."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user: Any = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("notary:login"))
        if user.role != Role.NOTARY:
            raise PermissionDenied("The notary portal is for notaries.")
        return view(request, *args, **kwargs)

    return wrapper


def notary_required(view: View) -> View:
    """A notary who has passed both the password and the TOTP second factor."""

    @wraps(view)
    @notary_password_checked
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_verified():  # type: ignore[union-attr]
            return redirect("notary:verify")
        return view(request, *args, **kwargs)

    return wrapper


def public(view: View) -> View:
    """Marks a view that anyone may open (login pages); the access test reads the mark."""
    view.access_public = True  # type: ignore[attr-defined]
    return view
