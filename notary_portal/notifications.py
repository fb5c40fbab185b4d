"""The notaries' notifications: claims ready for review, contests and the other
notices sent to every notary, listed in the portal as well as mailed."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import notary_required
from records.models import Notification

PER_PAGE = 50


@notary_required
def notifications(request: HttpRequest) -> HttpResponse:
    """Notices for every notary, newest first; a customer's or the vendor's own
    notices are not the notary's business and are not listed."""
    listed = Notification.objects.filter(audience=Notification.Audience.NOTARIES).order_by(
        "-created_at", "-pk"
    )
    page = Paginator(listed, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "notary/notifications.html", {"page": page})
