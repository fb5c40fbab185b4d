"""The notary portal: the deposit register and the release claims."""

from __future__ import annotations

import base64
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.decorators import method_decorator
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from accounts.access import notary_password_checked, notary_required, public
from escrow.history import Audience, deposit_history, history_lines
from escrow.models import DepositAcknowledgement, DepositState
from escrow.selectors import (
    OPEN_CLAIM_STATES,
    attach_verifications,
    claims_for_notary,
    deposits_for_register,
)
from escrow.services.seal_changes import seal_changes_waiting
from notary_portal import services, witness
from notary_portal.forms import NotaryLoginForm, TotpForm


@method_decorator(public, name="dispatch")
class NotaryLoginView(auth_views.LoginView):
    form_class = NotaryLoginForm
    template_name = "notary/login.html"

    def get_default_redirect_url(self) -> str:
        return "/notary/verify/"


@method_decorator(public, name="dispatch")
class NotaryLogoutView(auth_views.LogoutView):
    next_page = "notary:login"


@notary_password_checked
def verify(request: HttpRequest) -> HttpResponse:
    notary: Any = request.user
    if not services.totp_has_confirmed_device(notary=notary):
        return redirect("notary:enrol")
    form = TotpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        device = services.totp_verify(notary=notary, token=form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            return redirect("notary:dashboard")
        form.add_error("token", "That code is not valid. Codes change every 30 seconds.")
    return render(request, "notary/verify.html", {"form": form})


@notary_password_checked
def enrol(request: HttpRequest) -> HttpResponse:
    notary: Any = request.user
    if services.totp_has_confirmed_device(notary=notary):
        return redirect("notary:verify")
    form = TotpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        device = services.totp_confirm_enrolment(notary=notary, token=form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            messages.success(request, "Your authenticator is set up.")
            return redirect("notary:dashboard")
        form.add_error("token", "That code is not valid. Scan the code again and retry.")
    # Imported here: only enrolment draws a QR code, and every web worker would
    # otherwise carry segno (about 0.4 MiB) from start-up.
    import segno

    device = services.totp_device_for_enrolment(notary=notary)
    context = {
        "form": form,
        # segno writes plain SVG markup (no script, no style attribute), safe under the CSP.
        "qr_svg": mark_safe(segno.make(device.config_url).svg_inline(scale=4)),
        "secret": base64.b32encode(device.bin_key).decode().rstrip("="),
    }
    return render(request, "notary/enrol.html", context)


# The dashboard shows the most urgent few of each list; "see all" opens the whole list.
SUMMARY_ROWS = 10


@notary_required
def dashboard(request: HttpRequest) -> HttpResponse:
    claims = claims_for_notary()
    open_claims = claims.filter(state__in=OPEN_CLAIM_STATES)
    closed_claims = claims.exclude(state__in=OPEN_CLAIM_STATES).order_by("-updated_at")
    awaiting = deposits_for_register().filter(state=DepositState.REPLICATED).order_by("created_at")
    deposits = deposits_for_register()
    context = {
        "awaiting": attach_verifications(awaiting[:SUMMARY_ROWS]),
        "awaiting_count": awaiting.count(),
        "deposits": attach_verifications(deposits[:SUMMARY_ROWS]),
        "deposit_count": deposits.count(),
        "open_claims": open_claims[:SUMMARY_ROWS],
        "open_claim_count": open_claims.count(),
        "closed_claims": closed_claims[:SUMMARY_ROWS],
        "closed_claim_count": closed_claims.count(),
        "seal_changes_waiting": len(seal_changes_waiting()),
    }
    return render(request, "notary/dashboard.html", context)


@notary_required
def deposit_detail(request: HttpRequest, deposit_id: int) -> HttpResponse:
    deposit = get_object_or_404(deposits_for_register(), pk=deposit_id)
    attach_verifications([deposit])
    context = {
        "deposit": deposit,
        "completeness": deposit.manifest.get("completeness", {}),
        "copies": deposit.copies.order_by("site", "kind"),
        "acknowledgement": DepositAcknowledgement.objects.filter(deposit=deposit).first(),
        "history": history_lines(deposit_history(deposit), audience=Audience.NOTARY),
    }
    if deposit.state == DepositState.REPLICATED:
        context |= witness.witness_context(request.user)  # type: ignore[arg-type]
    if context["acknowledgement"] is not None:
        context |= witness.receipt_context(context["acknowledgement"])
    return render(request, "notary/deposit.html", context)


@notary_required
@require_POST
def acknowledge(request: HttpRequest, deposit_id: int) -> HttpResponse:
    deposit = get_object_or_404(deposits_for_register(), pk=deposit_id)
    witness.acknowledge_with_witness(request, deposit)
    return redirect("notary:deposit", deposit_id=deposit.pk)
