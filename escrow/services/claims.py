"""Release claims and their state machine."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from escrow.models import Product, ReleaseClaim, Role, User
from escrow.services.audit import audit_record
from escrow.services.transitions import apply_transition


def _require_reasons(reasons: str) -> str:
    reasons = reasons.strip()
    if not reasons:
        raise ValidationError({"reasons": "A decision needs written reasons."})
    return reasons


def claim_file(*, product: Product, filed_by: User, condition: str, statement: str) -> ReleaseClaim:
    """A customer user files a release claim for a product on behalf of its organisation."""
    if filed_by.role != Role.CUSTOMER or filed_by.organisation is None:
        raise PermissionDenied("Only customer users can file release claims.")
    claim = ReleaseClaim(
        claimant=filed_by.organisation,
        filed_by=filed_by,
        product=product,
        condition=condition,
        statement=statement.strip(),
    )
    claim.full_clean(exclude=["state"])
    with transaction.atomic():
        claim.save(force_insert=True)
        audit_record(action="releaseclaim.file", actor=filed_by, target=claim, to_state=claim.state)
    return claim


def claim_notify_vendor(*, claim: ReleaseClaim) -> ReleaseClaim:
    """The vendor has been told of the claim (system only)."""
    return apply_transition(claim, "notify_vendor", actor=None)


def claim_contest(*, claim: ReleaseClaim, actor: User | None, statement: str) -> ReleaseClaim:
    """The vendor contests the claim within the contest period."""
    return apply_transition(claim, "contest", actor=actor, reason=statement)


def claim_mark_uncontested(*, claim: ReleaseClaim) -> ReleaseClaim:
    """The contest period ended without a contest (system only)."""
    return apply_transition(claim, "mark_uncontested", actor=None)


def claim_start_review(*, claim: ReleaseClaim, actor: User | None) -> ReleaseClaim:
    """The notary takes the claim up for review."""
    return apply_transition(claim, "start_review", actor=actor)


def claim_request_evidence(*, claim: ReleaseClaim, notary: User, reasons: str) -> ReleaseClaim:
    """The notary asks the claimant for more evidence."""
    return apply_transition(
        claim, "request_evidence", actor=notary, reason=_require_reasons(reasons)
    )


def claim_provide_evidence(*, claim: ReleaseClaim, actor: User) -> ReleaseClaim:
    """The claimant supplied the evidence asked for; the review resumes."""
    return apply_transition(claim, "provide_evidence", actor=actor)


def claim_approve(*, claim: ReleaseClaim, notary: User, reasons: str) -> ReleaseClaim:
    """The notary approves the release, with written reasons."""
    return apply_transition(claim, "approve", actor=notary, reason=_require_reasons(reasons))


def claim_reject(*, claim: ReleaseClaim, notary: User, reasons: str) -> ReleaseClaim:
    """The notary rejects the claim, with written reasons."""
    return apply_transition(claim, "reject", actor=notary, reason=_require_reasons(reasons))


def claim_release(*, claim: ReleaseClaim, actor: User | None) -> ReleaseClaim:
    """The released deposit has been handed to the claimant."""
    return apply_transition(claim, "release", actor=actor)


def claim_withdraw(*, claim: ReleaseClaim, actor: User, reason: str = "") -> ReleaseClaim:
    """The claimant withdraws its claim before the notary decides."""
    return apply_transition(claim, "withdraw", actor=actor, reason=reason)
