"""The notary's review of release claims, decisions, stored identity and safe export."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from accounts.access import notary_required
from billing.selectors import subscriptions_for
from escrow.history import Audience, history_lines
from escrow.links import evidence_link
from escrow.models import ClaimRelease, ClaimState, NotaryStoredIdentity, ReleaseClaim
from escrow.selectors import claim_history
from escrow.services.claim_status import claim_waiting_for
from escrow.services.claims import claim_approval_problem, claim_reject, claim_request_evidence
from escrow.services.releases import (
    ApprovalRefused,
    deposit_to_release,
    notary_identity_store,
    notary_identity_unlock,
    parse_identities,
    release_approve,
)
from escrow.services.safe_export import safe_export_chunks
from notary_portal.forms import DecisionForm, StoreIdentityForm
from records.downloads import as_download
from records.services.transitions import TransitionRefused
from verification.selectors import verification_for


@notary_required
def claim_detail(request: HttpRequest, claim_id: int) -> HttpResponse:
    claim = get_object_or_404(
        ReleaseClaim.objects.select_related("product", "product__vendor", "claimant"), pk=claim_id
    )
    return render(request, "notary/claim.html", _claim_context(request, claim, DecisionForm()))


def _claim_context(request: HttpRequest, claim: ReleaseClaim, form: DecisionForm) -> dict[str, Any]:
    deposit = deposit_to_release(claim)
    release = ClaimRelease.objects.filter(claim=claim).select_related("deposit").first()
    return {
        "claim": claim,
        "form": form,
        "wait": claim_waiting_for(claim=claim),
        # Shown up front while the notary could decide: approval would be refused.
        "approval_problem": (
            claim_approval_problem(claim=claim) if claim.state == ClaimState.UNDER_REVIEW else ""
        ),
        "history": history_lines(claim_history(claim), audience=Audience.NOTARY),
        "evidence": claim.evidence.all(),
        "subscriptions": subscriptions_for(claim.claimant, claim.product),
        "deposit": deposit,
        # Whether the deposit to be released (or, once released, the one that was)
        # passed build verification, and when: the notary weighs it before deciding.
        "verification": verification_for(deposit.pk) if deposit else None,
        "release": release,
        "release_verification": verification_for(release.deposit_id) if release else None,
        "has_stored_identity": NotaryStoredIdentity.objects.filter(notary=request.user).exists(),  # type: ignore[misc]
    }


@sensitive_variables("identity_text", "identities", "passphrase")
def _identities(request: HttpRequest, form: DecisionForm) -> list[Any]:
    notary: Any = request.user
    passphrase = form.cleaned_data.get("passphrase") or ""
    upload = form.cleaned_data.get("identity_file")
    identity_text = form.cleaned_data.get("identity") or (
        upload.read(64 * 1024).decode("utf-8", "replace") if upload else ""
    )
    if identity_text:
        return parse_identities(identity_text)
    return notary_identity_unlock(notary=notary, passphrase=passphrase)


@sensitive_post_parameters("identity", "passphrase")
@notary_required
@require_POST
@sensitive_variables("form")
def decide(request: HttpRequest, claim_id: int) -> HttpResponse:
    notary: Any = request.user
    claim = get_object_or_404(ReleaseClaim, pk=claim_id)
    form = DecisionForm(request.POST, request.FILES)
    if form.is_valid():
        action, reasons = form.cleaned_data["action"], form.cleaned_data["reasons"]
        try:
            if action == "request_evidence":
                claim_request_evidence(claim=claim, notary=notary, reasons=reasons)
            elif action == "reject":
                claim_reject(claim=claim, notary=notary, reasons=reasons)
            else:
                release_approve(
                    claim=claim,
                    notary=notary,
                    reasons=reasons,
                    identities=_identities(request, form),
                )
        except (ApprovalRefused, TransitionRefused, PermissionDenied, ValidationError) as error:
            form.add_error(None, " ".join(getattr(error, "messages", [str(error)])))
        else:
            messages.success(request, "Your decision is recorded.")
            return redirect("notary:claim", claim_id=claim.pk)
    claim.refresh_from_db()
    # The pasted identity is never put back into the page.
    form.data = {key: value for key, value in form.data.items() if key != "identity"}
    return render(request, "notary/claim.html", _claim_context(request, claim, form), status=400)


@notary_required
def claim_evidence(request: HttpRequest, claim_id: int, evidence_id: int) -> HttpResponse:
    claim = get_object_or_404(ReleaseClaim, pk=claim_id)
    evidence = get_object_or_404(claim.evidence, pk=evidence_id)
    notary: Any = request.user
    return HttpResponseRedirect(evidence_link(evidence=evidence, viewer=f"notary:{notary.email}"))


@sensitive_post_parameters("identity", "passphrase", "passphrase_again")
@notary_required
def store_identity(request: HttpRequest) -> HttpResponse:
    notary: Any = request.user
    form = StoreIdentityForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            notary_identity_store(
                notary=notary,
                identity_text=form.cleaned_data["identity"],
                passphrase=form.cleaned_data["passphrase"],
            )
        except (ApprovalRefused, ValidationError) as error:
            form.add_error(None, " ".join(getattr(error, "messages", [str(error)])))
        else:
            messages.success(request, "Your identity is stored, encrypted under your passphrase.")
            return redirect("notary:dashboard")
    form.data = {}  # never echo a pasted identity
    stored = NotaryStoredIdentity.objects.filter(notary=notary).first()
    return render(request, "notary/identity.html", {"form": form, "stored": stored})


@notary_required
def safe_export(request: HttpRequest) -> StreamingHttpResponse:
    """Every acknowledged deposit's sealed file, manifest and signature, with a README."""
    response = StreamingHttpResponse(
        safe_export_chunks(actor=request.user),
        content_type="application/zip",
    )
    return as_download(response, name="escrow-safe", content_type="application/zip")
