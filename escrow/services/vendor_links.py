"""The vendor's link to a claim: read it and its evidence, contest it in time.

The vendor has no account here; the link in its e-mail is the credential. It
is signed, names one claim, and stops working 30 days after the contest period
(or after filing, for a voluntary release)."""

from __future__ import annotations

from datetime import timedelta

from django.core import signing
from django.urls import reverse
from django.utils import timezone

from escrow.models import ReleaseClaim

LINK_SALT = "escrow.vendor-claim"
READABLE_AFTER_DEADLINE = timedelta(days=30)


def vendor_claim_link(*, claim: ReleaseClaim) -> str:
    token = signing.dumps({"claim": claim.pk}, salt=LINK_SALT)
    return reverse("vendor-claim", kwargs={"token": token})


def claim_from_vendor_link(token: str) -> ReleaseClaim | None:
    try:
        claims = signing.loads(token, salt=LINK_SALT)
    except signing.BadSignature:
        return None
    claim = (
        ReleaseClaim.objects.filter(pk=claims.get("claim"))
        .select_related("product", "claimant")
        .first()
    )
    if claim is None:
        return None
    until = (claim.contest_deadline or claim.created_at) + READABLE_AFTER_DEADLINE
    return claim if timezone.now() < until else None
