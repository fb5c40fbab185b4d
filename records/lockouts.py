"""An audit row for each sign-in lock-out, from django-axes' ``user_locked_out`` signal.

Axes sends the signal for the failure that reaches the limit and again for every
attempt refused while the lock lasts. Only the first is a new lock-out; writing a
row for each refused attempt would let anyone lengthen the audit chain at will
by hammering a login page. So a row is written when the failures counted for the
username or for the address have just reached the limit, naming which."""

from __future__ import annotations

from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_failure_limit, get_lockout_parameters
from django.db.models import Sum
from django.http import HttpRequest

from records.services.audit import audit_record

ANONYMOUS = "anonymous"


def newly_locked_by(request: HttpRequest) -> list[str]:
    """The lock-out parameters (``username``, ``ip_address``) whose failure count
    this request has just brought to the limit; empty while a lock goes on."""
    credentials = getattr(request, "axes_credentials", None)
    handler: Any = AxesProxyHandler.get_implementation()
    limit = get_failure_limit(request, credentials)
    parameters = get_lockout_parameters(request, credentials)
    counted = handler.get_user_attempts(request, credentials)
    newly = []
    for parameter, attempts in zip(parameters, counted, strict=True):
        failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
        if failures == limit:
            newly.append(parameter if isinstance(parameter, str) else "+".join(parameter))
    return newly


def login_locked_out_record(
    sender: Any,
    *,
    request: HttpRequest,
    username: str | None = None,
    ip_address: str | None = None,
    **kwargs: Any,
) -> None:
    """Receiver of ``axes.signals.user_locked_out`` (connected in RecordsConfig.ready)."""
    locked_by = newly_locked_by(request)
    if not locked_by:
        return
    audit_record(
        action="login.locked_out",
        actor_label=ANONYMOUS,
        details={
            "username": username or "",
            "ip_address": ip_address or "",
            "locked_by": locked_by,
            "path": request.path,
        },
    )
