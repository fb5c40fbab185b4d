"""Release claims and their state machine."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import roles
from accounts.models import Organisation, Product, Role, User
from billing.models import Subscription, SubscriptionState
from escrow.business_days import add_business_days
from escrow.links import vendor_claim_link
from escrow.models import (
    ClaimEvidence,
    ClaimState,
    Deposit,
    DepositState,
    ReleaseClaim,
    ReleaseCondition,
)
from escrow.services.evidence import Upload, check_uploads, evidence_seal
from records.models import Notification
from records.queue import enqueue_on_commit
from records.services.audit import audit_record
from records.services.notifications import notification_queue
from records.services.transitions import apply_transition


def _require_reasons(reasons: str) -> str:
    reasons = reasons.strip()
    if not reasons:
        raise ValidationError({"reasons": "A decision needs written reasons."})
    return reasons


def claim_eligibility_problem(*, organisation: Organisation, product: Product) -> str:
    """Why the organisation may not claim a release of the product ("" when it may).

    Only an active escrow subscription gives the right (see docs/architecture.md),
    and there must be an acknowledged deposit to release."""
    if not Subscription.objects.filter(
        licence__customer=organisation,
        licence__product=product,
        state=SubscriptionState.ACTIVE,
    ).exists():
        return (
            f"{organisation.name} has no active escrow subscription for {product.name}: "
            "only subscribers with a paid, active subscription may claim a release."
        )
    if not Deposit.objects.filter(product=product, state=DepositState.ACKNOWLEDGED).exists():
        return (
            f"No deposit of {product.name} has been acknowledged by the notary yet, so "
            "there is nothing that could be released."
        )
    return ""


def claim_file(
    *,
    product: Product,
    filed_by: User,
    condition: str,
    statement: str,
    uploads: list[Upload] | None = None,
) -> ReleaseClaim:
    """A customer user of an eligible organisation files a release claim with its
    evidence; the vendor is notified once it is recorded."""

    if filed_by.role != Role.CUSTOMER or filed_by.organisation is None:
        raise PermissionDenied("Only customer users can file release claims.")
    if condition == ReleaseCondition.VOLUNTARY:
        raise ValidationError(
            {
                "condition": "A voluntary release is the vendor's own act: the vendor "
                "releases through its claim link. Claim the release condition that has "
                "occurred; the vendor then has the full contest period."
            }
        )
    problem = claim_eligibility_problem(organisation=filed_by.organisation, product=product)
    if problem:
        raise ValidationError(problem)
    claim = ReleaseClaim(
        claimant=filed_by.organisation,
        filed_by=filed_by,
        product=product,
        condition=condition,
        statement=statement.strip(),
    )
    claim.full_clean(exclude=["state"])
    checked = check_uploads(uploads or [])
    with transaction.atomic():
        claim.save(force_insert=True)
        audit_record(action="releaseclaim.file", actor=filed_by, target=claim, to_state=claim.state)
    # Evidence is sealed and stored outside the transaction (site I/O), then recorded.
    _attach(claim, checked, side=ClaimEvidence.Side.CLAIMANT, actor=filed_by)
    enqueue_on_commit("escrow.claim_notify_vendor", claim_id=claim.pk)
    return claim


def _attach(
    claim: ReleaseClaim, checked: list[tuple[Upload, str]], *, side: str, actor: User | None
) -> list[ClaimEvidence]:
    rows = evidence_seal(claim_id=claim.pk, uploads=checked)
    with transaction.atomic():
        for row in rows:
            row.claim, row.side, row.uploaded_by = claim, side, actor
            row.save()
            audit_record(
                action="releaseclaim.evidence_add",
                actor=actor,
                target=claim,
                details={"file": row.filename, "sha256": row.sha256, "side": side},
            )
    return rows


def claim_notify_vendor(*, claim: ReleaseClaim) -> ReleaseClaim:
    """Tell the vendor (its contact address) of the claim and start the contest period,
    in business days. Every claim waits out the full period: only the vendor can cut it
    short, by releasing voluntarily (``claim_release_voluntarily_by_vendor``)."""
    deadline = add_business_days(timezone.now(), settings.ESCROW_CONTEST_BUSINESS_DAYS)
    with transaction.atomic():
        apply_transition(claim, "notify_vendor", actor=None, contest_deadline=deadline)
        vendor = claim.product.vendor
        link = vendor_claim_link(claim=claim)
        notification_queue(
            organisation=vendor,
            kind=Notification.Kind.RELEASE_CLAIM_FILED,
            subject=f"Release claim for {claim.product.name} by {claim.claimant.name}",
            body=(
                f"{claim.claimant.name} claims a release of {claim.product.name} "
                f"({claim.get_condition_display()}).\n\nRead the claim and its evidence, "
                f"and contest it until {deadline:%d %B %Y %H:%M} UTC (or release "
                f"voluntarily): {settings.ESCROW_PUBLIC_URL}{link}\n"
            ),
        )
    return claim


def claim_contest(*, claim: ReleaseClaim, actor: User | None, statement: str) -> ReleaseClaim:
    """The contest transition alone (see ``claim_contest_by_vendor``)."""
    return apply_transition(
        claim,
        "contest",
        actor=actor,
        actor_label=None if actor else "vendor",
        reason=statement,
        statement=statement,
    )


def claim_contest_by_vendor(
    *, claim: ReleaseClaim, statement: str, uploads: list[Upload] | None = None
) -> ReleaseClaim:
    """The vendor contests the claim, with a statement and evidence, before the contest
    period ends; the notary then reviews both sides."""
    statement = statement.strip()
    if not statement:
        raise ValidationError({"statement": "A contest needs a statement."})
    if claim.contest_deadline is None or timezone.now() >= claim.contest_deadline:
        raise ValidationError(
            "The contest period of this claim has ended"
            + (
                f" ({claim.contest_deadline:%d %B %Y %H:%M} UTC)."
                if claim.contest_deadline
                else "."
            )
        )
    checked = check_uploads(uploads or [])
    claim_contest(claim=claim, actor=None, statement=statement)
    _attach(claim, checked, side=ClaimEvidence.Side.VENDOR, actor=None)
    return claim_start_review(claim=claim, actor=None)


def claim_release_voluntarily(
    *,
    claim: ReleaseClaim,
    actor: User | None,
    reason: str,
    details: dict[str, str] | None = None,
) -> ReleaseClaim:
    """The voluntary-release transition alone (see ``claim_release_voluntarily_by_vendor``
    and ``claim_release_voluntarily_by_staff``): ``actor`` ``None`` is the vendor
    through its signed link; otherwise staff."""
    claimed = str(claim.condition)
    return apply_transition(
        claim,
        "release_voluntarily",
        actor=actor,
        actor_label=None if actor else "vendor",
        reason=reason,
        details={"claimed_condition": claimed, **(details or {})},
    )


def _voluntary_release(
    *, claim: ReleaseClaim, actor: User | None, reason: str, details: dict[str, str]
) -> ReleaseClaim:
    # A racing contest, a second release or the contest-period task is refused by the
    # state machine's optimistic check (ConcurrentTransitionMixin); nothing half-moves.
    with transaction.atomic():
        claim_release_voluntarily(claim=claim, actor=actor, reason=reason, details=details)
        return claim_start_review(claim=claim, actor=None)


def claim_release_voluntarily_by_vendor(*, claim: ReleaseClaim, statement: str) -> ReleaseClaim:
    """The vendor, through its signed claim link, releases voluntarily with a written
    statement: the claim goes to the notary without waiting for the contest period.
    The audit row names the vendor (the link's holder) and keeps the statement."""
    statement = statement.strip()
    if not statement:
        raise ValidationError({"statement": "A voluntary release needs a written statement."})
    return _voluntary_release(
        claim=claim, actor=None, reason=statement, details={"by": "vendor's signed claim link"}
    )


def claim_release_voluntarily_by_staff(
    *, claim: ReleaseClaim, actor: User, reason: str
) -> ReleaseClaim:
    """Staff release voluntarily on the vendor's written instruction (a letter, an
    e-mail), saying which instruction and why; the audit row names the staff user."""
    reason = reason.strip()
    if not reason:
        raise ValidationError(
            "A voluntary release by staff needs a reason naming the vendor's written instruction."
        )
    return _voluntary_release(
        claim=claim,
        actor=actor,
        reason=reason,
        details={"by": "staff on the vendor's written instruction"},
    )


def claim_mark_uncontested(*, claim: ReleaseClaim) -> ReleaseClaim:
    """The contest period ended without a contest (system only)."""
    return apply_transition(claim, "mark_uncontested", actor=None)


def claims_contest_elapsed(*, now: datetime) -> list[ReleaseClaim]:
    """Move every claim whose contest period has ended on, exactly once: each claim is
    locked (and skipped if another run holds it) and re-checked before it moves."""
    moved = []
    due = ReleaseClaim.objects.filter(
        state=ClaimState.VENDOR_NOTIFIED, contest_deadline__lte=now
    ).values_list("pk", flat=True)
    for claim_id in list(due):
        with transaction.atomic():
            claim = (
                ReleaseClaim.objects.select_for_update(skip_locked=True)
                .filter(pk=claim_id, state=ClaimState.VENDOR_NOTIFIED, contest_deadline__lte=now)
                .first()
            )
            if claim is None:
                continue  # another run moved it, or is moving it now
            claim_mark_uncontested(claim=claim)
            moved.append(claim_start_review(claim=claim, actor=None))
    return moved


def claim_start_review(*, claim: ReleaseClaim, actor: User | None) -> ReleaseClaim:
    """The notary takes the claim up for review."""
    return apply_transition(claim, "start_review", actor=actor)


def claim_request_evidence(*, claim: ReleaseClaim, notary: User, reasons: str) -> ReleaseClaim:
    """The notary asks the claimant for more evidence, saying what and why."""
    reasons = _require_reasons(reasons)
    with transaction.atomic():
        apply_transition(claim, "request_evidence", actor=notary, reason=reasons)
        notification_queue(
            organisation=claim.claimant,
            kind=Notification.Kind.RELEASE_CLAIM_DECIDED,
            subject=f"More evidence needed for your release claim ({claim.product.name})",
            body=f"The notary asks for more evidence:\n\n{reasons}\n\nAdd it in the portal.",
        )
    return claim


def claim_provide_evidence(
    *, claim: ReleaseClaim, actor: User, uploads: list[Upload] | None = None
) -> ReleaseClaim:
    """The claimant supplied the evidence asked for; the review resumes."""
    checked = check_uploads(uploads or [])
    if uploads is not None and not checked:
        raise ValidationError("Add at least one document.")
    if not roles.claimant_member(claim, actor):
        raise PermissionDenied("Only the claimant's users add evidence to this claim.")
    claim = apply_transition(claim, "provide_evidence", actor=actor)
    _attach(claim, checked, side=ClaimEvidence.Side.CLAIMANT, actor=actor)
    return claim


def claim_approve(*, claim: ReleaseClaim, notary: User, reasons: str) -> ReleaseClaim:
    """The approval transition alone. The notary portal approves through
    ``escrow.services.releases.release_approve``, which also re-wraps the deposit."""
    reasons = _require_reasons(reasons)
    return apply_transition(
        claim,
        "approve",
        actor=notary,
        reason=reasons,
        notary=notary,
        reasons=reasons,
        at=timezone.now(),
    )


def claim_reject(*, claim: ReleaseClaim, notary: User, reasons: str) -> ReleaseClaim:
    """The notary rejects the claim, with written reasons; final."""
    reasons = _require_reasons(reasons)
    with transaction.atomic():
        apply_transition(
            claim,
            "reject",
            actor=notary,
            reason=reasons,
            notary=notary,
            reasons=reasons,
            at=timezone.now(),
        )
        notification_queue(
            organisation=claim.claimant,
            kind=Notification.Kind.RELEASE_CLAIM_DECIDED,
            subject=f"Your release claim for {claim.product.name} was rejected",
            body=f"The notary rejected the claim, giving these reasons:\n\n{reasons}\n",
        )
    return claim


def claim_release(*, claim: ReleaseClaim, actor: User | None) -> ReleaseClaim:
    """The released deposit has been handed to the claimant."""
    return apply_transition(claim, "release", actor=actor)


def claim_withdraw(*, claim: ReleaseClaim, actor: User, reason: str = "") -> ReleaseClaim:
    """The claimant withdraws its claim before the notary decides."""
    return apply_transition(claim, "withdraw", actor=actor, reason=reason)
