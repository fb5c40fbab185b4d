"""Downloads through links that expire within the hour."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.views.decorators.http import require_GET

from accounts.access import public
from escrow.certificates import CERTIFIABLE_STATES, certificate_document_render, may_see_certificate
from escrow.links import (
    certificate_from_link,
    certificate_link,
    evidence_from_link,
    release_from_link,
)
from escrow.models import Deposit
from escrow.services.evidence import evidence_open
from escrow.services.releases import released_file_chunks
from records.downloads import AGE_CONTENT_TYPE, as_download
from records.links import stored_file_from_link
from records.services.audit import audit_record
from vault.site_clients import all_sites


@require_GET
def certificate(request: HttpRequest, deposit_id: int) -> HttpResponse:
    """Staff, verified notaries and covered customers get a fresh expiring link. Anyone
    else gets the same 404 as for a deposit that does not exist, so the answer does not
    tell which deposits exist."""
    user: Any = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path(), "/portal/login/")
    deposit = Deposit.objects.filter(pk=deposit_id, state__in=CERTIFIABLE_STATES).first()
    if deposit is None or not may_see_certificate(user, deposit):
        raise Http404("No such certificate.")
    return HttpResponseRedirect(certificate_link(deposit=deposit, user=user))


@public
@require_GET
def certificate_download(request: HttpRequest, token: str) -> HttpResponse:
    """The link itself is the credential (like a presigned URL); it names the user it was
    made for, who must still be allowed to see the deposit when it is used."""
    found = certificate_from_link(token)
    if found is None:
        raise Http404("This link is not valid or has expired; ask for a new one.")
    deposit, user = found
    if deposit.state not in CERTIFIABLE_STATES or not _still_allowed(user, deposit):
        raise Http404("This link is no longer valid.")
    audit_record(action="deposit.certificate_download", actor=user, target=deposit)
    response = HttpResponse(
        certificate_document_render(deposit=deposit), content_type="application/pdf"
    )
    name = f"deposit-{deposit.product.slug}-{deposit.version}"
    return as_download(response, name=name, content_type="application/pdf")


def _still_allowed(user: Any, deposit: Deposit) -> bool:
    # A notary's second factor belongs to a session, not to a link: a notary
    # stays allowed while active; the other roles are checked as when it was made.
    if user.role == "notary":
        return bool(user.is_active)
    return may_see_certificate(user, deposit)


@public
@require_GET
def file_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """A stored document through its expiring link: from an S3 site, a presigned URL
    that lives no longer than the link; from a local site, streamed by the app."""
    found = stored_file_from_link(token)
    if found is None:
        raise Http404("This link is not valid or has expired; ask for a new one.")
    stored, user, seconds_left = found
    audit_record(action="file.download", actor=user, details={"key": stored.key})
    site = all_sites()[0]
    if site.kind == "s3":
        return HttpResponseRedirect(site.presigned_url(stored.key, expires_in=seconds_left))
    response = FileResponse(site.open(stored.key), content_type=stored.content_type)
    return as_download(response, name=stored.filename, content_type=stored.content_type)


@public
@require_GET
def release_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The released file (new header + stored payload), streamed, through its link."""
    found = release_from_link(token)
    if found is None:
        raise Http404("This link is not valid or has expired; ask for a new one in the portal.")
    release, user = found
    audit_record(action="release.download", actor=user, target=release.claim)
    deposit = release.deposit
    response = StreamingHttpResponse(
        released_file_chunks(release), content_type="application/octet-stream"
    )
    response["Content-Length"] = str(release.released_size)
    name = f"{deposit.product.slug}-{deposit.version}-released"
    return as_download(response, name=name, content_type=AGE_CONTENT_TYPE)


@public
@require_GET
def evidence_download(request: HttpRequest, token: str) -> HttpResponse:
    """One evidence document, decrypted by the app, through its expiring link."""
    found = evidence_from_link(token)
    if found is None:
        raise Http404("This link is not valid or has expired.")
    evidence, viewer = found
    audit_record(
        action="evidence.view",
        actor_label=viewer,
        target=evidence.claim,
        details={"file": evidence.filename},
    )
    response = HttpResponse(evidence_open(evidence), content_type=evidence.content_type)
    # Always a download: a document is never rendered in this site's own origin, and
    # its name as uploaded never reaches the header (records/downloads.py).
    return as_download(response, name=evidence.filename, content_type=evidence.content_type)
