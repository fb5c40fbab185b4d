"""The customer portal: what a customer organisation may see of its escrow."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.decorators import method_decorator

from accounts.access import customer_required, public
from billing.selectors import amounts_due, licences_of, newest_subscription_by_licence
from escrow.list_filters import DepositFilterForm
from escrow.models import ReleaseKey
from escrow.selectors import (
    attach_verifications,
    covered_products_overview,
    deposits_visible_to,
    products_covered_for,
    products_licensed_by,
)
from portal.forms import CustomerLoginForm
from records.listing import page_of


@method_decorator(public, name="dispatch")
class CustomerLoginView(auth_views.LoginView):
    form_class = CustomerLoginForm
    template_name = "portal/login.html"
    redirect_authenticated_user = False

    def get_default_redirect_url(self) -> str:
        return "/portal/"


@method_decorator(public, name="dispatch")
class CustomerLogoutView(auth_views.LogoutView):
    next_page = "portal:login"


@customer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    organisation = user.organisation
    licences = licences_of(organisation)
    newest_subscription = newest_subscription_by_licence(organisation)
    context = {
        "organisation": organisation,
        "licences": [(licence, newest_subscription.get(licence.pk)) for licence in licences],
        "covered": covered_products_overview(organisation),
        "amount_due": amounts_due(organisation),
        "release_key": ReleaseKey.objects.filter(organisation=organisation).first(),
        "stale_days": settings.ESCROW_STALE_DEPOSIT_DAYS,
        "build_stale_days": settings.ESCROW_VERIFY_STALE_DAYS,
    }
    return render(request, "portal/dashboard.html", context)


@customer_required
def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    user: Any = request.user
    # Products the organisation does not license are "not found", not "forbidden":
    # a customer learns nothing about other customers' products.
    product = get_object_or_404(products_licensed_by(user.organisation), slug=slug)
    covered = products_covered_for(user.organisation).filter(pk=product.pk).exists()
    form = DepositFilterForm(request.GET)
    context: dict[str, Any] = {"product": product, "covered": covered, "form": form}
    if covered:
        deposits = deposits_visible_to(user.organisation).filter(product=product)
        context["page"] = page_of(request, form.narrow(deposits))
        attach_verifications(context["page"].object_list)
    return render(request, "portal/product.html", context)
