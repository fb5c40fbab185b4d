"""The vendor's page for a release claim, reached through the link in its e-mail."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render

from accounts.access import public
from escrow.forms import ContestForm, VoluntaryReleaseForm, uploads_from
from escrow.history import Audience, history_lines
from escrow.links import claim_from_vendor_link, evidence_link
from escrow.models import ClaimState
from escrow.selectors import claim_history
from escrow.services.claim_status import claim_waiting_for
from escrow.services.claims import claim_contest_by_vendor, claim_release_voluntarily_by_vendor
from records.services.transitions import TransitionRefused


@public
def vendor_claim(request: HttpRequest, token: str) -> HttpResponse:
    """The link is the credential: it names one claim and expires. The vendor contests
    the claim, or releases voluntarily (the button names which)."""
    claim = claim_from_vendor_link(token)
    if claim is None:
        raise Http404("This link is not valid or has expired.")
    posted = request.POST if request.method == "POST" else None
    releasing = posted is not None and posted.get("action") == "release_voluntarily"
    release_form = VoluntaryReleaseForm(posted if releasing else None)
    if releasing and release_form.is_valid():
        try:
            claim_release_voluntarily_by_vendor(
                claim=claim, statement=release_form.cleaned_data["statement"]
            )
        except ValidationError as error:
            release_form.add_error(None, error)
        except TransitionRefused:
            release_form.add_error(None, "This claim has moved on; nothing was changed.")
        else:
            messages.success(
                request, "Your voluntary release is recorded; the notary now reviews the claim."
            )
            return redirect("vendor-claim", token=token)
    form = ContestForm(
        None if releasing else posted,
        request.FILES if posted is not None and not releasing else None,
    )
    if posted is not None and not releasing and form.is_valid():
        try:
            claim_contest_by_vendor(
                claim=claim,
                statement=form.cleaned_data["statement"],
                uploads=uploads_from(request.FILES.getlist("documents")),
            )
        except ValidationError as error:
            form.add_error(None, error)
        except TransitionRefused:
            # Withdrawn, decided or moved on meanwhile: say so, never a server error.
            claim.refresh_from_db()
            form.add_error(
                None,
                f"This claim can no longer be contested: it is "
                f"{claim.get_state_display().lower()}. Nothing was changed.",
            )
        else:
            messages.success(
                request, "Your contest is recorded; the notary will review both sides."
            )
            return redirect("vendor-claim", token=token)
    context = {
        "claim": claim,
        "wait": claim_waiting_for(claim=claim),
        "form": form,
        "release_form": release_form,
        "token": token,
        "may_contest": claim.state == ClaimState.VENDOR_NOTIFIED,
        "evidence": claim.evidence.all(),
        "history": history_lines(
            claim_history(claim),
            audience=Audience.VENDOR,
            time_zone=claim.product.vendor.effective_time_zone,
        ),
    }
    return render(request, "vendor/claim.html", context)


@public
def vendor_evidence(request: HttpRequest, token: str, evidence_id: int) -> HttpResponse:
    claim = claim_from_vendor_link(token)
    if claim is None:
        raise Http404("This link is not valid or has expired.")
    evidence = get_object_or_404(claim.evidence, pk=evidence_id)
    return HttpResponseRedirect(evidence_link(evidence=evidence, viewer="vendor"))
