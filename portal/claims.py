"""Release claims in the customer portal: file, follow, add evidence, download."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.access import customer_required
from escrow.forms import uploads_from
from escrow.history import Audience, history_lines
from escrow.links import evidence_link, release_link
from escrow.list_filters import ClaimFilterForm
from escrow.models import ClaimRelease, ClaimState, ReleaseClaim, ReleaseKey
from escrow.models.claims import WITHDRAWABLE_STATES
from escrow.selectors import claim_history, products_licensed_by
from escrow.services.claim_status import claim_waiting_for
from escrow.services.claims import (
    claim_eligibility_problem,
    claim_file,
    claim_provide_evidence,
    claim_withdraw,
)
from escrow.services.releases import release_letter_render
from portal.forms import ClaimForm, EvidenceForm
from records.links import stored_file_link
from records.listing import page_of
from records.models import StoredFile
from records.services.transitions import TransitionRefused


def _own_claim(request: HttpRequest, claim_id: int) -> ReleaseClaim:
    user: Any = request.user
    return get_object_or_404(ReleaseClaim, pk=claim_id, claimant=user.organisation)


@customer_required
def claims(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    organisation = user.organisation
    products = products_licensed_by(organisation).order_by("name")
    # The claim filing service's own rules say which products may be claimed; the form
    # offers only those, and refuses another one posted with the service's reason.
    eligibility = [
        (product, claim_eligibility_problem(organisation=organisation, product=product))
        for product in products
    ]
    refusals = {product.pk: problem for product, problem in eligibility if problem}
    data = request.POST if request.method == "POST" else None
    form = ClaimForm(
        data, request.FILES if data is not None else None, products=products, refusals=refusals
    )
    if request.method == "POST" and form.is_valid():
        try:
            claim = claim_file(
                product=form.cleaned_data["product"],
                filed_by=user,
                condition=form.cleaned_data["condition"],
                statement=form.cleaned_data["statement"],
                uploads=uploads_from(request.FILES.getlist("documents")),
            )
        except ValidationError as error:
            # Refusals name their field (the documents) or the whole claim; a storage
            # failure says to try again. Nothing was recorded in any case.
            form.add_error(None, error)
        else:
            messages.success(request, "Your claim is filed; the vendor is being notified.")
            return redirect("portal:claim", claim_id=claim.pk)
    filters = ClaimFilterForm(request.GET, products=products)
    listed = organisation.release_claims.select_related("product", "product__vendor")
    context = {
        "form": form,
        "filters": filters,
        "page": page_of(request, filters.narrow(listed)),
        "eligibility": eligibility,
        "may_file": len(refusals) < len(eligibility),
        "contest_days": settings.ESCROW_CONTEST_BUSINESS_DAYS,
    }
    return render(request, "portal/claims.html", context)


@customer_required
def claim_detail(request: HttpRequest, claim_id: int) -> HttpResponse:
    claim = _own_claim(request, claim_id)
    release = ClaimRelease.objects.filter(claim=claim).first()
    context = {
        "claim": claim,
        "wait": claim_waiting_for(claim=claim),
        "history": history_lines(
            claim_history(claim), audience=Audience.CUSTOMER, organisation_id=claim.claimant_id
        ),
        "evidence": claim.evidence.all(),
        "release": release,
        "release_key": ReleaseKey.objects.filter(organisation=claim.claimant).first(),
        "evidence_form": EvidenceForm(),
        "may_withdraw": claim.state in WITHDRAWABLE_STATES,
    }
    return render(request, "portal/claim.html", context)


@customer_required
@require_POST
def claim_add_evidence(request: HttpRequest, claim_id: int) -> HttpResponse:
    claim = _own_claim(request, claim_id)
    try:
        claim_provide_evidence(
            claim=claim,
            actor=request.user,  # type: ignore[arg-type]
            uploads=uploads_from(request.FILES.getlist("documents")),
        )
    except (ValidationError, TransitionRefused, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(request, "Evidence added; the notary resumes the review.")
    return redirect("portal:claim", claim_id=claim.pk)


@customer_required
@require_POST
def claim_withdraw_view(request: HttpRequest, claim_id: int) -> HttpResponse:
    claim = _own_claim(request, claim_id)
    try:
        claim_withdraw(claim=claim, actor=request.user, reason="withdrawn in the portal")  # type: ignore[arg-type]
    except TransitionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, "The claim is withdrawn.")
    return redirect("portal:claim", claim_id=claim.pk)


@customer_required
def claim_evidence(request: HttpRequest, claim_id: int, evidence_id: int) -> HttpResponse:
    claim = _own_claim(request, claim_id)
    evidence = get_object_or_404(claim.evidence, pk=evidence_id)
    user: Any = request.user
    return HttpResponseRedirect(evidence_link(evidence=evidence, viewer=f"customer:{user.email}"))


@customer_required
def claim_download(request: HttpRequest, claim_id: int) -> HttpResponse:
    """A fresh link (at most an hour) to the released file, while the release stands."""
    claim = _own_claim(request, claim_id)
    release = get_object_or_404(ClaimRelease, claim=claim, claim__state=ClaimState.RELEASED)
    link = release_link(release=release, user=request.user)  # type: ignore[arg-type]
    # ?part=kit: the released deposit's signed manifest, allowed_signers and log proof.
    if request.GET.get("part") == "kit":
        link += "?part=kit"
    return HttpResponseRedirect(link)


@customer_required
def claim_letter(request: HttpRequest, claim_id: int) -> HttpResponse:
    claim = _own_claim(request, claim_id)
    release = get_object_or_404(ClaimRelease, claim=claim)
    stored: StoredFile = release_letter_render(release=release)
    return HttpResponseRedirect(stored_file_link(stored=stored, user=request.user))  # type: ignore[arg-type]
