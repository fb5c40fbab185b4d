"""Customer portal pages for the escrow subscription, invoices, the release key and
data exports. Every view is for customer users of the organisation concerned."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters

from accounts.access import customer_required
from billing.agreements import agreement_current
from billing.documents import invoice_document_render
from billing.fees import percent_label
from billing.models import Invoice, LicenceAgreement, Subscription, SubscriptionState
from billing.pricing import Quote, first_period_quote
from billing.selectors import (
    invoice_years_of,
    invoices_of,
    products_invoiced_to,
    unpaid_invoice_of_lapsed_subscription,
)
from billing.services import (
    resubscribe_refusal,
    subscription_cancel_at_period_end,
    subscription_subscribe,
)
from escrow.api.authentication import client_address
from escrow.models import DataExport, ReleaseKey
from escrow.services.exports import (
    ExportFeeRequired,
    export_fee_for,
    export_free_from,
    export_request,
)
from escrow.services.release_keys import release_key_set
from portal.forms import (
    CancelSubscriptionForm,
    ExportForm,
    InvoiceFilterForm,
    ReleaseKeyForm,
)
from portal.people_forms import AgreementSubscribeForm
from records.downloads import AGE_CONTENT_TYPE, as_download
from records.links import stored_file_link
from records.listing import page_of
from records.services.transitions import TransitionRefused


def _quote_signature(quote: Quote) -> str:
    return f"{quote.period[0]}/{quote.period[1]}/{quote.currency} {quote.total}"


@customer_required
def subscribe(request: HttpRequest, licence_id: int) -> HttpResponse:
    """The price of the first period (docs/billing.md, rule 1) is shown before the
    customer confirms; it is the quote the service then invoices."""
    user: Any = request.user
    licence = get_object_or_404(LicenceAgreement, pk=licence_id, customer=user.organisation)
    preview = Subscription(licence=licence)
    quote = first_period_quote(
        licence=licence, fee_rate=preview.fee_rate, today=timezone.localdate()
    )
    signature = _quote_signature(quote)
    agreement = agreement_current()
    form = AgreementSubscribeForm(
        request.POST if request.method == "POST" else None,
        initial={"quoted": signature},
        version=agreement.version,
    )
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["quoted"] not in ("", signature):
            messages.warning(
                request,
                "The period or the price changed since the page was shown (a new day began): "
                "check them below and confirm again.",
            )
            form = AgreementSubscribeForm(initial={"quoted": signature}, version=agreement.version)
        else:
            try:
                subscription = subscription_subscribe(
                    licence=licence,
                    actor=user,
                    accept_terms=True,
                    agreement_version=form.cleaned_data["agreement_version"],
                    ip_address=client_address(request),
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                if subscription.state == SubscriptionState.ACTIVE:
                    messages.success(
                        request,
                        f"Subscribed: {licence.product.name} is covered until "
                        f"{quote.last_day:%d %B %Y}. No fee is due, so there is no invoice.",
                    )
                    return redirect("portal:dashboard")
                messages.success(
                    request,
                    f"Subscribed: the invoice for {licence.product.name} is under Invoices.",
                )
                return redirect("portal:invoices")
    unpaid = unpaid_invoice_of_lapsed_subscription(licence)
    context = {
        "licence": licence,
        "fee": preview.fee,
        "rate": percent_label(preview.fee_rate),
        "quote": quote,
        "form": form,
        "agreement": agreement,
        "blocked": resubscribe_refusal(unpaid) if unpaid else "",
    }
    return render(request, "portal/subscribe.html", context)


@customer_required
def cancel_subscription(request: HttpRequest, subscription_id: int) -> HttpResponse:
    """A page that says what cancelling does (docs/billing.md, rule 4); only a POST that
    ticks the confirmation cancels."""
    user: Any = request.user
    subscription = get_object_or_404(
        Subscription.objects.select_related("licence__product"),
        pk=subscription_id,
        licence__customer=user.organisation,
    )
    form = CancelSubscriptionForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            subscription_cancel_at_period_end(
                subscription=subscription, actor=user, reason="cancelled in the portal"
            )
        except (TransitionRefused, PermissionDenied) as refused:
            messages.error(request, str(refused))
        except ValidationError as refused:
            messages.error(request, "; ".join(refused.messages))
        else:
            if subscription.is_ending:
                assert subscription.last_covered_day is not None
                messages.success(
                    request,
                    f"The escrow subscription for {subscription.licence.product.name} is "
                    f"cancelled: cover continues until {subscription.last_covered_day:%d %B %Y} "
                    "and is not renewed.",
                )
            else:
                messages.success(
                    request,
                    f"The escrow subscription for {subscription.licence.product.name} is "
                    "cancelled.",
                )
        return redirect("portal:dashboard")
    unpaid = [
        invoice
        for invoice in subscription.invoices.filter(kind=Invoice.Kind.INVOICE)
        if invoice.amount_due() > 0
        and (
            subscription.state != SubscriptionState.ACTIVE
            or (invoice.period_start or subscription.period_end) >= subscription.period_end
        )
    ]
    context = {"subscription": subscription, "form": form, "unpaid": unpaid}
    return render(request, "portal/cancel_subscription.html", context)


@customer_required
def invoices(request: HttpRequest) -> HttpResponse:
    """The organisation's invoices, a page at a time, found by number, status, year or
    product; what is due is computed in the list's query."""
    user: Any = request.user
    organisation = user.organisation
    form = InvoiceFilterForm(
        request.GET,
        years=invoice_years_of(organisation),
        products=products_invoiced_to(organisation),
    )
    page = page_of(request, form.narrow(invoices_of(organisation)))
    return render(request, "portal/invoices.html", {"page": page, "form": form})


@customer_required
def invoice_pdf(request: HttpRequest, number: str) -> HttpResponse:
    """A fresh link, valid for at most an hour, to the organisation's own invoice."""
    user: Any = request.user
    invoice = get_object_or_404(Invoice, number=number, customer=user.organisation)
    return HttpResponseRedirect(
        stored_file_link(stored=invoice_document_render(invoice=invoice), user=user)
    )


@sensitive_post_parameters("passphrase", "passphrase_again")
@customer_required
def release_key(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    current = ReleaseKey.objects.filter(organisation=user.organisation).first()
    initial = {"method": current.method, "recipient": current.recipient} if current else {}
    form = ReleaseKeyForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            release_key_set(
                actor=user,
                method=form.cleaned_data["method"],
                recipient=form.cleaned_data.get("recipient", ""),
                passphrase=form.cleaned_data.get("passphrase", ""),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Your release key is saved.")
            return redirect("portal:release-key")
    return render(request, "portal/release_key.html", {"form": form, "current": current})


@customer_required
def release_key_file(request: HttpRequest) -> HttpResponse:
    """The passphrase-protected identity of the organisation's release key (age armor).
    Only the passphrase the customer chose opens it; the server cannot."""
    user: Any = request.user
    key = get_object_or_404(
        ReleaseKey, organisation=user.organisation, method=ReleaseKey.Method.PASSPHRASE
    )
    response = HttpResponse(key.encrypted_identity, content_type="text/plain; charset=utf-8")
    return as_download(response, name="release-key", content_type=AGE_CONTENT_TYPE)


@customer_required
def exports(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    organisation = user.organisation
    form = ExportForm(request.POST if request.method == "POST" else None)
    fee = export_fee_for(organisation)
    if request.method == "POST" and form.is_valid():
        try:
            export = export_request(actor=user, accept_fee=form.cleaned_data["accept_fee"])
        except ExportFeeRequired as required:
            messages.error(request, f"{required} Tick the box to accept the fee.")
        else:
            export.refresh_from_db()  # in-process, its build has run already
            if export.state == DataExport.State.FAILED:
                messages.error(
                    request,
                    "Your export could not be built; our staff have been told. "
                    + ("Its fee was credited. " if export.fee else "")
                    + "You can request another one.",
                )
            else:
                building = export.state == DataExport.State.BUILDING
                state = "is being built" if building else "is ready"
                messages.success(request, f"Your export {state}.")
            return redirect("portal:exports")
    listed = organisation.data_exports.select_related("invoice")
    context = {
        "exports": listed,
        "fee": fee,
        "currency": settings.ESCROW_EXPORT_FEE_CURRENCY,
        "free_from": export_free_from(organisation),
        "form": form,
    }
    return render(request, "portal/exports.html", context)


@customer_required
def export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    user: Any = request.user
    export = get_object_or_404(
        DataExport, pk=export_id, organisation=user.organisation, state=DataExport.State.READY
    )
    assert export.stored_file is not None
    return HttpResponseRedirect(stored_file_link(stored=export.stored_file, user=user))
