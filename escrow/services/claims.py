"""Release claims and their state machine.

A claim always ends somewhere: its evidence is stored before any state change that
records it commits (a storage failure changes nothing), an organisation has at most
one open claim per product, and every step tells the parties it concerns
(``escrow.services.claim_notices``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed, has_transition_perm

from accounts import roles
from accounts.models import Organisation, Product, Role, User
from billing.models import Subscription, SubscriptionState
from escrow.business_days import add_business_days, local_time_text
from escrow.models import (
    ClaimEvidence,
    ClaimState,
    Deposit,
    DepositState,
    ReleaseClaim,
    ReleaseCondition,
)
from escrow.models.claims import OPEN_STATES
from escrow.services.claim_notices import claim_notices_queue
from escrow.services.evidence import Upload, check_uploads, evidence_seal
from records.queue import enqueue_on_commit
from records.services.audit import audit_record
from records.services.transitions import apply_transition

# A claim still ``filed`` this long after it was recorded missed its vendor notice (a
# crash, a lost task); the scheduled check sends it then.
FILED_NOTICE_GRACE = timedelta(minutes=5)


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


def open_claim_of(*, organisation: Organisation, product: Product) -> ReleaseClaim | None:
    """The organisation's open claim for the product (one before a final decision), if any."""
    return ReleaseClaim.objects.filter(
        claimant=organisation, product=product, state__in=OPEN_STATES
    ).first()


def _open_claim_message(claim: ReleaseClaim) -> str:
    return (
        f"{claim.claimant.name} already has an open release claim for {claim.product.name}: "
        f"claim #{claim.pk} ({claim.get_state_display().lower()}). Follow it under Claims, "
        "or withdraw it before filing another."
    )


NO_EVIDENCE = (
    "Add at least one document as evidence (a court ruling, a register extract, "
    "letters): a claim cannot be filed without evidence."
)


def claim_file(
    *,
    product: Product,
    filed_by: User,
    condition: str,
    statement: str,
    uploads: list[Upload] | None = None,
) -> ReleaseClaim:
    """A customer user of an eligible organisation files a release claim with its
    evidence; the vendor is notified once it is recorded.

    Everything that can be refused is checked first (who files, eligibility, an open
    claim for the same product, the claim's fields, the documents); then the evidence
    is sealed and stored; only then do the claim, its evidence rows and its audit row
    commit together. A storage failure leaves no claim behind, so filing again later
    files exactly one."""

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
    organisation = filed_by.organisation
    problem = claim_eligibility_problem(organisation=organisation, product=product)
    if problem:
        raise ValidationError(problem)
    existing = open_claim_of(organisation=organisation, product=product)
    if existing is not None:
        raise ValidationError(_open_claim_message(existing))
    claim = ReleaseClaim(
        claimant=organisation,
        filed_by=filed_by,
        product=product,
        condition=condition,
        statement=statement.strip(),
    )
    claim.full_clean(exclude=["state"])
    checked = check_uploads(uploads or [])
    if not checked:
        raise ValidationError({"documents": NO_EVIDENCE})
    rows = evidence_seal(uploads=checked)  # storage first, outside the transaction
    try:
        with transaction.atomic():
            claim.save(force_insert=True)
            _record_evidence(claim, rows, side=ClaimEvidence.Side.CLAIMANT, actor=filed_by)
            audit_record(
                action="releaseclaim.file",
                actor=filed_by,
                target=claim,
                to_state=claim.state,
                details={"evidence": _described(rows)},
            )
            enqueue_on_commit("escrow.claim_notify_vendor", claim_id=claim.pk)
    except IntegrityError:
        # Another request filed for the same product meanwhile: the index refused this one.
        raced = open_claim_of(organisation=organisation, product=product)
        if raced is None:
            raise
        raise ValidationError(_open_claim_message(raced)) from None
    return claim


def _described(rows: list[ClaimEvidence]) -> list[dict[str, str]]:
    return [{"file": row.filename, "sha256": row.sha256} for row in rows]


def _record_evidence(
    claim: ReleaseClaim, rows: list[ClaimEvidence], *, side: str, actor: User | None
) -> None:
    """Save stored evidence rows in the caller's transaction (its audit row lists them)."""
    for row in rows:
        row.claim, row.side, row.uploaded_by = claim, side, actor
        row.save()


def _refuse_unless_possible(claim: ReleaseClaim, name: str, actor: User | None) -> None:
    """Refuse a transition the claim cannot take now, before anything is stored for it.
    ``apply_transition`` refuses it the same way (and changes nothing)."""
    method = getattr(claim, name)
    if not can_proceed(method) or not has_transition_perm(method, cast(Any, actor)):
        apply_transition(claim, name, actor=actor)  # raises the refusal, naming the state


def claim_contest_deadline(*, claim: ReleaseClaim, start: datetime) -> datetime:
    """The end of the contest period that starts at ``start``: ESCROW_CONTEST_BUSINESS_DAYS
    business days on the vendor's calendar and clock (escrow.business_days)."""
    vendor = claim.product.vendor
    return add_business_days(
        start,
        settings.ESCROW_CONTEST_BUSINESS_DAYS,
        country=vendor.country,
        time_zone=vendor.effective_time_zone,
    )


def claim_notify_vendor(*, claim: ReleaseClaim) -> ReleaseClaim:
    """Tell the vendor (its contact address) of the claim and start the contest period,
    in business days on the vendor's calendar; the claimant gets a receipt naming the
    deadline, staff a note. Every claim waits out the full period: only the vendor can
    cut it short, by releasing voluntarily (``claim_release_voluntarily_by_vendor``)."""
    deadline = claim_contest_deadline(claim=claim, start=timezone.now())
    with transaction.atomic():
        apply_transition(claim, "notify_vendor", actor=None, contest_deadline=deadline)
        claim_notices_queue(claim=claim, step="vendor_notified")
    return claim


def claim_contest(
    *,
    claim: ReleaseClaim,
    actor: User | None,
    statement: str,
    evidence: list[ClaimEvidence] | None = None,
) -> ReleaseClaim:
    """The contest transition alone, with the vendor's already stored evidence recorded
    in the same transaction (see ``claim_contest_by_vendor``)."""
    rows = evidence or []
    with transaction.atomic():
        apply_transition(
            claim,
            "contest",
            actor=actor,
            actor_label=None if actor else "vendor",
            reason=statement,
            details={"evidence": _described(rows)} if rows else None,
            statement=statement,
        )
        _record_evidence(claim, rows, side=ClaimEvidence.Side.VENDOR, actor=actor)
    return claim


def claim_contest_by_vendor(
    *, claim: ReleaseClaim, statement: str, uploads: list[Upload] | None = None
) -> ReleaseClaim:
    """The vendor contests the claim, with a statement and evidence, before the contest
    period ends; the notary then reviews both sides. The evidence is stored first; the
    contest, its evidence rows and the start of the review commit together, so a
    storage failure leaves the claim as it was (the vendor may try again)."""
    statement = statement.strip()
    if not statement:
        raise ValidationError({"statement": "A contest needs a statement."})
    if claim.contest_deadline is None or timezone.now() >= claim.contest_deadline:
        vendor = claim.product.vendor
        ended = (
            f" ({local_time_text(claim.contest_deadline, time_zone=vendor.effective_time_zone)})."
            if claim.contest_deadline
            else "."
        )
        raise ValidationError("The contest period of this claim has ended" + ended)
    checked = check_uploads(uploads or [])
    _refuse_unless_possible(claim, "contest", None)
    rows = evidence_seal(claim_id=claim.pk, uploads=checked)
    with transaction.atomic():
        claim_contest(claim=claim, actor=None, statement=statement, evidence=rows)
        claim_start_review(claim=claim, actor=None)
        claim_notices_queue(claim=claim, step="contested")
    return claim


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
        claim_start_review(claim=claim, actor=None)
        claim_notices_queue(claim=claim, step="ready", voluntary=True)
    return claim


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
    """Move every claim whose contest period has ended on to the notary, exactly once:
    each claim is locked (and skipped if another run holds it) and re-checked before it
    moves; the notaries and the claimant are told it is ready for review.

    It also sends the vendor notice of any claim still ``filed`` FILED_NOTICE_GRACE
    after it was recorded (its notice task was lost), so no claim stays there."""
    _notify_vendors_of_late_claims(now=now)
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
            claim_notices_queue(claim=claim, step="ready")
    return moved


def _notify_vendors_of_late_claims(*, now: datetime) -> None:
    late = ReleaseClaim.objects.filter(
        state=ClaimState.FILED, created_at__lte=now - FILED_NOTICE_GRACE
    ).values_list("pk", flat=True)
    for claim_id in list(late):
        with transaction.atomic():
            claim = (
                ReleaseClaim.objects.select_for_update(skip_locked=True)
                .filter(pk=claim_id, state=ClaimState.FILED)
                .first()
            )
            if claim is not None:
                claim_notify_vendor(claim=claim)


def claim_start_review(*, claim: ReleaseClaim, actor: User | None) -> ReleaseClaim:
    """The notary takes the claim up for review."""
    return apply_transition(claim, "start_review", actor=actor)


def claim_request_evidence(*, claim: ReleaseClaim, notary: User, reasons: str) -> ReleaseClaim:
    """The notary asks the claimant for more evidence, saying what and why."""
    reasons = _require_reasons(reasons)
    with transaction.atomic():
        apply_transition(claim, "request_evidence", actor=notary, reason=reasons)
        claim_notices_queue(claim=claim, step="evidence_requested", reasons=reasons)
    return claim


def claim_provide_evidence(
    *, claim: ReleaseClaim, actor: User, uploads: list[Upload] | None = None
) -> ReleaseClaim:
    """The claimant supplies the evidence the notary asked for; the review resumes and
    the notaries are told. The documents are stored first; the transition and their
    rows commit together, so a storage failure leaves the claim waiting for evidence."""
    checked = check_uploads(uploads or [])
    if not checked:
        raise ValidationError("Add at least one document.")
    if not roles.claimant_member(claim, actor):
        raise PermissionDenied("Only the claimant's users add evidence to this claim.")
    _refuse_unless_possible(claim, "provide_evidence", actor)
    rows = evidence_seal(claim_id=claim.pk, uploads=checked)
    with transaction.atomic():
        apply_transition(
            claim, "provide_evidence", actor=actor, details={"evidence": _described(rows)}
        )
        _record_evidence(claim, rows, side=ClaimEvidence.Side.CLAIMANT, actor=actor)
        claim_notices_queue(claim=claim, step="evidence_provided")
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
        claim_notices_queue(claim=claim, step="rejected", reasons=reasons)
    return claim


def claim_release(*, claim: ReleaseClaim, actor: User | None) -> ReleaseClaim:
    """The released deposit has been handed to the claimant."""
    return apply_transition(claim, "release", actor=actor)


def claim_withdraw(*, claim: ReleaseClaim, actor: User, reason: str = "") -> ReleaseClaim:
    """The claimant withdraws its claim before the notary decides; the vendor (if it was
    told of the claim), the notaries and staff are told."""
    vendor_was_told = claim.state != ClaimState.FILED
    with transaction.atomic():
        apply_transition(claim, "withdraw", actor=actor, reason=reason)
        claim_notices_queue(claim=claim, step="withdrawn", vendor_was_told=vendor_was_told)
    return claim


def claim_approval_problem(*, claim: ReleaseClaim) -> str:
    """Why the notary may not approve the claim now ("" when nothing stands in the way
    of the claimant's right): eligibility is checked again at the decision, because a
    subscription can lapse, or end after a cancellation, while the claim waits."""
    problem = claim_eligibility_problem(organisation=claim.claimant, product=claim.product)
    if not problem:
        return ""
    return (
        f"Approval is not possible now: {problem} Nothing can be released while this "
        "is so; you may still reject the claim or ask for more evidence."
    )
