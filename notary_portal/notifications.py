"""The notaries' notifications: claims ready for review, contests and the other
notices sent to every notary, listed in the portal as well as mailed."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import notary_required
from escrow.list_filters import NotificationFilterForm
from records.listing import page_of
from records.models import Notification

PER_PAGE = 50


@notary_required
def notifications(request: HttpRequest) -> HttpResponse:
    """Notices for every notary, newest first; a customer's or the vendor's own
    notices are not the notary's business and are not listed."""
    listed = Notification.objects.filter(audience=Notification.Audience.NOTARIES).order_by(
        "-created_at", "-pk"
    )
    kinds = listed.order_by().values_list("kind", flat=True).distinct()
    form = NotificationFilterForm(request.GET, kinds=kinds)
    page = page_of(request, form.narrow(listed), per_page=PER_PAGE)
    return render(request, "notary/notifications.html", {"page": page, "form": form})
