"""The customer's notifications: every e-mail the system sent (or is about to
send) to the organisation, so a notice that went to a spam folder or to a
colleague's mailbox is still found."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import customer_required
from escrow.list_filters import NotificationFilterForm
from records.listing import page_of
from records.models import Notification

PER_PAGE = 50


@customer_required
def notifications(request: HttpRequest) -> HttpResponse:
    """The organisation's own notifications, newest first; never another party's
    (the query names the organisation of the signed-in user, nothing from the URL)."""
    user: Any = request.user
    listed = Notification.objects.filter(
        audience=Notification.Audience.ORGANISATION, organisation=user.organisation
    ).order_by("-created_at", "-pk")
    kinds = listed.order_by().values_list("kind", flat=True).distinct()
    form = NotificationFilterForm(request.GET, kinds=kinds)
    page = page_of(request, form.narrow(listed), per_page=PER_PAGE)
    return render(request, "portal/notifications.html", {"page": page, "form": form})
