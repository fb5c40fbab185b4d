"""Downloads through links that expire within the hour.

A certificate's and a release's link also give, with ``?part=kit``, the verification
kit (escrow.certificates.verification_kit): a zip of the signed files and the
``ssh-keygen`` commands that check them. The link is the same credential either way."""

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
from escrow.certificates import (
    CERTIFIABLE_STATES,
    ManifestUnavailable,
    certificate_document_render,
    may_see_certificate,
    verification_kit,
)
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

#: ``?part=`` values a certificate or release link answers besides its main file.
KIT = "kit"
ZIP = "application/zip"


def _part(request: HttpRequest) -> str:
    part = request.GET.get("part", "")
    if part not in ("", KIT):
        raise Http404("No such part of this download.")
    return part


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
    link = certificate_link(deposit=deposit, user=user)
    # ``?part=kit`` here asks for the verification kit through the same link.
    return HttpResponseRedirect(link + ("?part=kit" if _part(request) == KIT else ""))


@public
@require_GET
def certificate_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The link itself is the credential (like a presigned URL); it names the user it was
    made for, who must still be allowed to see the deposit when it is used."""
    found = certificate_from_link(token)
    if found is None:
        raise Http404("This link is not valid or has expired; ask for a new one.")
    deposit, user = found
    if deposit.state not in CERTIFIABLE_STATES or not _still_allowed(user, deposit):
        raise Http404("This link is no longer valid.")
    name = f"deposit-{deposit.product.slug}-{deposit.version}"
    if _part(request) == KIT:
        audit_record(
            action="deposit.certificate_download", actor=user, target=deposit, details={"part": KIT}
        )
        return _kit(deposit, certificate=True, name=f"{name}-signatures")
    audit_record(action="deposit.certificate_download", actor=user, target=deposit)
    response = HttpResponse(
        certificate_document_render(deposit=deposit), content_type="application/pdf"
    )
    return as_download(response, name=name, content_type="application/pdf")


def _kit(deposit: Deposit, *, certificate: bool, name: str) -> HttpResponseBase:
    try:
        kit = verification_kit(deposit=deposit, certificate=certificate)
    except ManifestUnavailable:
        return HttpResponse(
            "The signed manifest cannot be read from the storage sites right now; try again later.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    return as_download(FileResponse(kit, content_type=ZIP), name=name, content_type=ZIP)


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
    deposit = release.deposit
    if _part(request) == KIT:
        # The released deposit's manifest.json and manifest.json.sig, allowed_signers,
        # the inclusion proof and the commands: what the release letter prints.
        audit_record(
            action="release.download", actor=user, target=release.claim, details={"part": KIT}
        )
        name = f"{deposit.product.slug}-{deposit.version}-signatures"
        return _kit(deposit, certificate=False, name=name)
    audit_record(action="release.download", actor=user, target=release.claim)
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
