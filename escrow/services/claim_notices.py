"""Who hears of each step of a release claim, and what they read.

Every party that has to act, or whose position changed, is told in the same
transaction as the step (records.services.notifications: an outbox, sent after
the commit): the claimant, the vendor, every notary and staff. Deadlines are given
on the vendor's clock, with the zone's name; links are absolute
(``records.links.public_url``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import reverse

from escrow.links import vendor_claim_link
from escrow.models import ReleaseClaim
from escrow.services.claim_status import claim_waiting_for
from records.links import public_url
from records.models import Notification
from records.services.notifications import notification_queue

Kind = Notification.Kind
Audience = Notification.Audience

CLAIMANT, VENDOR, NOTARIES, STAFF = "claimant", "vendor", "notaries", "staff"


@dataclass(frozen=True)
class _Notice:
    to: str
    kind: str
    subject: str
    body: str


@dataclass(frozen=True)
class _Step:
    """What a step's notices need besides the claim."""

    reasons: str = ""
    voluntary: bool = False
    vendor_was_told: bool = True


def _claimant_link(claim: ReleaseClaim) -> str:
    return public_url(reverse("portal:claim", kwargs={"claim_id": claim.pk}))


def _notary_link(claim: ReleaseClaim) -> str:
    return public_url(reverse("notary:claim", kwargs={"claim_id": claim.pk}))


def _staff_link(claim: ReleaseClaim) -> str:
    return public_url(reverse("admin:escrow_releaseclaim_change", args=[claim.pk]))


def _title(claim: ReleaseClaim) -> str:
    return f"claim #{claim.pk} by {claim.claimant.name} for {claim.product.name}"


def _vendor_notified(claim: ReleaseClaim, step: _Step) -> list[_Notice]:
    deadline = claim_waiting_for(claim=claim).deadline_text
    vendor = claim.product.vendor.name
    return [
        _Notice(
            VENDOR,
            Kind.RELEASE_CLAIM_FILED,
            f"Release claim for {claim.product.name} by {claim.claimant.name}",
            f"{claim.claimant.name} claims a release of {claim.product.name} "
            f"({claim.get_condition_display()}).\n\nRead the claim and its evidence, and "
            f"contest it until {deadline} (or release voluntarily): "
            f"{public_url(vendor_claim_link(claim=claim))}\n\nThe link works until then.\n",
        ),
        _Notice(
            CLAIMANT,
            Kind.RELEASE_CLAIM_RECEIVED,
            f"Your release claim for {claim.product.name} is filed (claim #{claim.pk})",
            f"Your claim for a release of {claim.product.name} "
            f"({claim.get_condition_display()}) is filed and {vendor} has been told.\n\n"
            f"{vendor} may contest it until {deadline}. After that the notary reviews "
            f"the claim and decides.\n\nFollow it: {_claimant_link(claim)}\n",
        ),
        _Notice(
            STAFF,
            Kind.RELEASE_CLAIM_FILED,
            f"New release {_title(claim)}",
            f"{claim.claimant.name} filed a release claim for {claim.product.name} "
            f"({claim.get_condition_display()}). {vendor} may contest it until "
            f"{deadline}.\n\n{_staff_link(claim)}\n",
        ),
    ]


def _contested(claim: ReleaseClaim, step: _Step) -> list[_Notice]:
    vendor = claim.product.vendor.name
    return [
        _Notice(
            CLAIMANT,
            Kind.RELEASE_CLAIM_CONTESTED,
            f"{vendor} contests your release claim for {claim.product.name}",
            f"{vendor} contests your claim #{claim.pk}, stating:\n\n{claim.vendor_statement}\n\n"
            f"The notary now reviews both sides and decides.\n\n{_claimant_link(claim)}\n",
        ),
        _Notice(
            NOTARIES,
            Kind.RELEASE_CLAIM_CONTESTED,
            f"Contested: release {_title(claim)} waits for your review",
            f"{vendor} contests release {_title(claim)}. Both sides and their evidence are "
            f"ready for your review and decision:\n\n{_notary_link(claim)}\n",
        ),
    ]


def _ready(claim: ReleaseClaim, step: _Step) -> list[_Notice]:
    how = (
        f"{claim.product.vendor.name} released voluntarily"
        if step.voluntary
        else "The vendor's contest period ended without a contest"
    )
    return [
        _Notice(
            NOTARIES,
            Kind.RELEASE_CLAIM_READY,
            f"Ready for review: release {_title(claim)}",
            f"{how}. Release {_title(claim)} waits for your decision:\n\n{_notary_link(claim)}\n",
        ),
        _Notice(
            CLAIMANT,
            Kind.RELEASE_CLAIM_READY,
            f"Your release claim for {claim.product.name} is with the notary",
            f"{how}. The notary now reviews your claim #{claim.pk} and decides.\n\n"
            f"{_claimant_link(claim)}\n",
        ),
    ]


def _evidence_requested(claim: ReleaseClaim, step: _Step) -> list[_Notice]:
    reasons = step.reasons
    return [
        _Notice(
            CLAIMANT,
            Kind.RELEASE_CLAIM_DECIDED,
            f"More evidence needed for your release claim ({claim.product.name})",
            f"The notary asks for more evidence:\n\n{reasons}\n\nAdd it in the portal: "
            f"{_claimant_link(claim)}\n",
        ),
    ]


def _evidence_provided(claim: ReleaseClaim, step: _Step) -> list[_Notice]:
    return [
        _Notice(
            NOTARIES,
            Kind.RELEASE_CLAIM_READY,
            f"Evidence added: release {_title(claim)} waits for your review",
            f"{claim.claimant.name} added the evidence you asked for. The claim is back "
            f"under review:\n\n{_notary_link(claim)}\n",
        ),
    ]


def _outcome(verb: str) -> Callable[[ReleaseClaim, _Step], list[_Notice]]:
    def notices(claim: ReleaseClaim, step: _Step) -> list[_Notice]:
        reasons = step.reasons
        body = f"The notary {verb} release {_title(claim)}, giving these reasons:\n\n{reasons}\n"
        claimant: list[_Notice] = []
        if verb == "rejected":
            claimant = [
                _Notice(
                    CLAIMANT,
                    Kind.RELEASE_CLAIM_DECIDED,
                    f"Your release claim for {claim.product.name} was rejected",
                    f"The notary rejected the claim, giving these reasons:\n\n{reasons}\n\n"
                    f"{_claimant_link(claim)}\n",
                )
            ]
        return [
            *claimant,
            _Notice(
                VENDOR,
                Kind.RELEASE_CLAIM_OUTCOME,
                f"The notary {verb} the release claim of {claim.claimant.name} "
                f"for {claim.product.name}",
                body,
            ),
            _Notice(
                STAFF,
                Kind.RELEASE_CLAIM_OUTCOME,
                f"Release {_title(claim)}: {verb}",
                f"{body}\n{_staff_link(claim)}\n",
            ),
        ]

    return notices


def _withdrawn(claim: ReleaseClaim, step: _Step) -> list[_Notice]:
    body = (
        f"{claim.claimant.name} withdrew release {_title(claim)}. Nothing more will happen to it.\n"
    )
    # A vendor that was never told of the claim is not told of its withdrawal either.
    vendor = (
        []
        if not step.vendor_was_told
        else [
            _Notice(
                VENDOR,
                Kind.RELEASE_CLAIM_WITHDRAWN,
                f"Withdrawn: the release claim of {claim.claimant.name} for {claim.product.name}",
                body,
            )
        ]
    )
    return [
        *vendor,
        _Notice(
            NOTARIES, Kind.RELEASE_CLAIM_WITHDRAWN, f"Withdrawn: release {_title(claim)}", body
        ),
        _Notice(
            STAFF,
            Kind.RELEASE_CLAIM_WITHDRAWN,
            f"Withdrawn: release {_title(claim)}",
            f"{body}\n{_staff_link(claim)}\n",
        ),
    ]


STEPS: dict[str, Callable[[ReleaseClaim, _Step], list[_Notice]]] = {
    "vendor_notified": _vendor_notified,
    "contested": _contested,
    "ready": _ready,
    "evidence_requested": _evidence_requested,
    "evidence_provided": _evidence_provided,
    "approved": _outcome("approved"),
    "rejected": _outcome("rejected"),
    "withdrawn": _withdrawn,
}


def claim_notices_queue(
    *,
    claim: ReleaseClaim,
    step: str,
    reasons: str = "",
    voluntary: bool = False,
    vendor_was_told: bool = True,
) -> list[Notification]:
    """Queue the notices of one step of the claim, in the caller's transaction.

    ``reasons`` are the notary's written reasons (a decision, a request for evidence);
    ``voluntary`` says a claim became ready because the vendor released voluntarily;
    ``vendor_was_told`` is false for a claim withdrawn before the vendor heard of it,
    so the vendor is not told of a claim it never saw."""
    if step not in STEPS:
        raise ValueError(f"Unknown claim step {step!r}; known: {', '.join(STEPS)}.")
    details = _Step(reasons=reasons, voluntary=voluntary, vendor_was_told=vendor_was_told)
    queued = []
    for notice in STEPS[step](claim, details):
        # A subject is at most 200 characters (long names must not stop the step).
        subject = notice.subject if len(notice.subject) <= 200 else notice.subject[:199] + "…"
        if notice.to in (CLAIMANT, VENDOR):
            organisation = claim.claimant if notice.to == CLAIMANT else claim.product.vendor
            queued.append(
                notification_queue(
                    kind=notice.kind, subject=subject, body=notice.body, organisation=organisation
                )
            )
        else:
            audience = Audience.NOTARIES if notice.to == NOTARIES else Audience.STAFF
            queued.append(
                notification_queue(
                    kind=notice.kind, subject=subject, body=notice.body, audience=audience
                )
            )
    return queued
