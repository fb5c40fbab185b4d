"""The page a locked-out sign-in gets, at every door (``AXES_LOCKOUT_CALLABLE``).

The same page, word for word, whatever username was typed: it names neither the
username nor whether an account has it, and holds no form (so no CSRF token
that would differ between two answers)."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

# Each door's own look; the admin's login page gets the plain site frame.
DOOR_TEMPLATES = {"portal": "portal/base.html", "notary": "notary/base.html"}


def cool_off_minutes(request: HttpRequest | None = None) -> int:
    """The cooling-off period in whole minutes (rounded up), as the page states it."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    return max(1, -(-seconds // 60))


def locked_out_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """429 Too Many Requests, saying how long to wait, with ``Retry-After``."""
    match = request.resolver_match
    # The application namespace: "admin" whatever the admin site instance is called.
    door = match.app_name if match else ""
    minutes = cool_off_minutes(request)
    response = render(
        request,
        "login_locked_out.html",
        {
            "base_template": DOOR_TEMPLATES.get(door, "base.html"),
            "door": "Staff" if door == "admin" else "",
            "minutes": minutes,
            "login_url": request.path,
        },
        status=429,
    )
    response["Retry-After"] = str(minutes * 60)
    return response
