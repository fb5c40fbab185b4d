"""The escrow's signed links: certificates, evidence, released files, the vendor's claim page.

Each pairs a maker (the path to hand out) with a checker (what the token names,
or ``None``). Tokens are made and checked only by records.links."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from escrow.models import ClaimEvidence, ClaimRelease, Deposit, ReleaseClaim
from records.links import link_claims, link_token, signed_claims, signed_value

CERTIFICATE_SALT = "escrow.certificate-link"
EVIDENCE_SALT = "escrow.evidence-link"
RELEASE_SALT = "escrow.release-link"
VENDOR_CLAIM_SALT = "escrow.vendor-claim"


def certificate_link(*, deposit: Deposit, user: User) -> str:
    """A download path that works for ESCROW_LINK_SECONDS (at most an hour)."""
    token = link_token(salt=CERTIFICATE_SALT, deposit=deposit.pk, user=user.pk)
    return reverse("certificate-download", kwargs={"token": token})


def certificate_from_link(token: str) -> tuple[Deposit, User] | None:
    """The deposit and user a link was made for, or ``None`` when it is forged or expired."""
    found = link_claims(token, salt=CERTIFICATE_SALT)
    if found is None:
        return None
    claims, _ = found
    deposit = Deposit.objects.filter(pk=claims.get("deposit", 0)).select_related("product").first()
    user = User.objects.filter(pk=claims.get("user", 0), is_active=True).first()
    if deposit is None or user is None:
        return None
    return deposit, user


def evidence_link(*, evidence: ClaimEvidence, viewer: str) -> str:
    """A path that shows one document for at most ESCROW_LINK_SECONDS."""
    token = link_token(salt=EVIDENCE_SALT, evidence=evidence.pk, viewer=viewer)
    return reverse("evidence-download", kwargs={"token": token})


def evidence_from_link(token: str) -> tuple[ClaimEvidence, str] | None:
    found = link_claims(token, salt=EVIDENCE_SALT)
    if found is None:
        return None
    claims, _ = found
    evidence = ClaimEvidence.objects.filter(pk=claims.get("evidence", 0)).first()
    return (evidence, str(claims.get("viewer", ""))) if evidence else None


def release_link(*, release: ClaimRelease, user: User) -> str:
    """A download path for the released file, valid for ESCROW_LINK_SECONDS."""
    token = link_token(salt=RELEASE_SALT, release=release.pk, user=user.pk)
    return reverse("release-download", kwargs={"token": token})


def release_from_link(token: str) -> tuple[ClaimRelease, User] | None:
    """The release and user of a link; ``None`` if forged, expired, or the user may no
    longer download it (inactive, or no longer a user of the claimant)."""
    found = link_claims(token, salt=RELEASE_SALT)
    if found is None:
        return None
    claims, _ = found
    release = (
        ClaimRelease.objects.filter(pk=claims.get("release", 0))
        .select_related("claim", "deposit__product")
        .first()
    )
    user = User.objects.filter(pk=claims.get("user", 0), is_active=True).first()
    if release is None or user is None or user.organisation_id != release.claim.claimant_id:
        return None
    return release, user


def vendor_claim_link(*, claim: ReleaseClaim) -> str:
    """The vendor's path to a claim. It carries no expiry of its own: the claim's
    contest deadline decides, when the link is checked."""
    token = signed_value(salt=VENDOR_CLAIM_SALT, claim=claim.pk)
    return reverse("vendor-claim", kwargs={"token": token})


def claim_from_vendor_link(token: str) -> ReleaseClaim | None:
    """The claim a vendor link names, until its contest deadline: the link is for
    reading and contesting the claim (or releasing voluntarily) in time, no longer."""
    claims = signed_claims(token, salt=VENDOR_CLAIM_SALT)
    if claims is None:
        return None
    claim = (
        ReleaseClaim.objects.filter(pk=claims.get("claim"))
        .select_related("product", "claimant")
        .first()
    )
    if claim is None:
        return None
    if claim.contest_deadline is None or timezone.now() >= claim.contest_deadline:
        return None
    return claim
