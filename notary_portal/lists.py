"""The notary's full lists: the deposit register and the release claims, a page at a
time, with the search and filters a notary on duty needs (the dashboard shows only
the most urgent few of each)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import notary_required
from accounts.models import Organisation, Product
from escrow.list_filters import ClaimFilterForm, DepositFilterForm
from escrow.selectors import attach_verifications, claims_for_notary, deposits_for_register
from records.listing import page_of


@notary_required
def deposits(request: HttpRequest) -> HttpResponse:
    """Every deposit that reached the notary (never a rejected upload), newest first."""
    form = DepositFilterForm(
        request.GET,
        products=Product.objects.order_by("name"),
        vendors=Organisation.objects.filter(kind=Organisation.Kind.VENDOR).order_by("name"),
    )
    page = page_of(request, form.narrow(deposits_for_register()))
    attach_verifications(page.object_list)
    return render(request, "notary/deposits.html", {"form": form, "page": page})


@notary_required
def claims(request: HttpRequest) -> HttpResponse:
    """Every release claim, those waiting for the notary first; closed ones alone are
    listed most recently closed first."""
    form = ClaimFilterForm(
        request.GET,
        products=Product.objects.order_by("name"),
        organisations=Organisation.objects.order_by("name"),
    )
    listed = form.narrow(claims_for_notary())
    if form.value("status") == "closed":
        listed = listed.order_by("-updated_at", "-pk")
    page = page_of(request, listed)
    return render(request, "notary/claims.html", {"form": form, "page": page})
