"""Customer portal pages for the escrow subscription, invoices, the release key and
data exports. Every view is for customer users of the organisation concerned."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from accounts.access import customer_required
from billing.documents import invoice_document_render
from billing.models import Invoice, LicenceAgreement, Subscription
from billing.selectors import invoices_of
from billing.services import subscription_cancel, subscription_subscribe
from escrow.models import DataExport, ReleaseKey
from escrow.services.exports import ExportFeeRequired, export_fee_for, export_request
from escrow.services.release_keys import release_key_set
from portal.forms import ExportForm, ReleaseKeyForm, SubscribeForm
from records.downloads import AGE_CONTENT_TYPE, as_download
from records.links import stored_file_link
from records.services.transitions import TransitionRefused


@customer_required
def subscribe(request: HttpRequest, licence_id: int) -> HttpResponse:
    user: Any = request.user
    licence = get_object_or_404(LicenceAgreement, pk=licence_id, customer=user.organisation)
    preview = Subscription(licence=licence)
    form = SubscribeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            subscription_subscribe(licence=licence, actor=user, accept_terms=True)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(
                request, f"Subscribed: the invoice for {licence.product.name} is under Invoices."
            )
            return redirect("portal:invoices")
    return render(
        request,
        "portal/subscribe.html",
        {"licence": licence, "fee": preview.fee, "rate": preview.fee_rate * 100, "form": form},
    )


@customer_required
@require_POST
def cancel_subscription(request: HttpRequest, subscription_id: int) -> HttpResponse:
    user: Any = request.user
    subscription = get_object_or_404(
        Subscription, pk=subscription_id, licence__customer=user.organisation
    )
    try:
        subscription_cancel(subscription=subscription, actor=user, reason="cancelled in the portal")
    except (TransitionRefused, PermissionDenied) as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, "The escrow subscription is cancelled.")
    return redirect("portal:dashboard")


@customer_required
def invoices(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    return render(request, "portal/invoices.html", {"invoices": invoices_of(user.organisation)})


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
            state = "is being built" if export.state == DataExport.State.BUILDING else "is ready"
            messages.success(request, f"Your export {state}.")
            return redirect("portal:exports")
    listed = organisation.data_exports.select_related("invoice")
    return render(request, "portal/exports.html", {"exports": listed, "fee": fee, "form": form})


@customer_required
def export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    user: Any = request.user
    export = get_object_or_404(
        DataExport, pk=export_id, organisation=user.organisation, state=DataExport.State.READY
    )
    assert export.stored_file is not None
    return HttpResponseRedirect(stored_file_link(stored=export.stored_file, user=user))
