"""The escrow agreement in the customer portal: the current version, the versions the
organisation accepted (who, when, from where), and each as a PDF."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.access import customer_required
from billing.agreements import (
    acceptances_of,
    agreement_blocks,
    agreement_current,
    agreement_pdf_render,
)
from billing.models import EscrowAgreement
from records.downloads import as_download
from records.listing import page_of


@customer_required
def agreement(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    current = agreement_current()
    context = {
        "agreement": current,
        "blocks": agreement_blocks(current),
        "page": page_of(request, acceptances_of(user.organisation)),
    }
    return render(request, "portal/agreement.html", context)


@customer_required
def agreement_pdf(request: HttpRequest, agreement_version: int) -> HttpResponse:
    """Any published version, with this organisation's acceptances of it."""
    user: Any = request.user
    agreement_current()  # version 1 exists even in a freshly flushed database
    chosen = get_object_or_404(EscrowAgreement, version=agreement_version)
    pdf = agreement_pdf_render(agreement=chosen, organisation=user.organisation)
    response = HttpResponse(pdf, content_type="application/pdf")
    return as_download(
        response, name=f"escrow-agreement-version-{chosen.version}", content_type="application/pdf"
    )
