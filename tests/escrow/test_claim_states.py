from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from escrow.models import ReleaseClaim
from escrow.services import claims as service
from escrow.services.evidence import Upload
from tests.factories import (
    EVIDENCE_PDF,
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
)
from tests.state_machines import Machine, assert_allowed, assert_refused, declared_table, snapshot

BEFORE_DECISION = [
    "filed",
    "vendor_notified",
    "contested",
    "uncontested",
    "under_review",
    "evidence_requested",
]

# From the design brief: filed -> vendor_notified -> contested / uncontested ->
# under_review (<-> evidence_requested) -> approved -> released; rejected; withdrawn.
TABLE = {
    "notify_vendor": {"filed": "vendor_notified"},
    "contest": {"vendor_notified": "contested"},
    "mark_uncontested": {"vendor_notified": "uncontested"},
    # The vendor's own act (its signed link, or staff on its written instruction).
    "release_voluntarily": {"vendor_notified": "uncontested"},
    "start_review": {"contested": "under_review", "uncontested": "under_review"},
    "request_evidence": {"under_review": "evidence_requested"},
    "provide_evidence": {"evidence_requested": "under_review"},
    "approve": {"under_review": "approved"},
    "reject": {"under_review": "rejected"},
    "release": {"approved": "released"},
    "withdraw": {state: "withdrawn" for state in BEFORE_DECISION},
}

REVIEW = ["notify_vendor", "mark_uncontested", "start_review"]
CLAIMS = Machine(
    model=ReleaseClaim,
    table=TABLE,
    paths={
        "filed": [],
        "vendor_notified": ["notify_vendor"],
        "contested": ["notify_vendor", "contest"],
        "uncontested": ["notify_vendor", "mark_uncontested"],
        "under_review": REVIEW,
        "evidence_requested": [*REVIEW, "request_evidence"],
        "approved": [*REVIEW, "approve"],
        "released": [*REVIEW, "approve", "release"],
        "rejected": [*REVIEW, "reject"],
        "withdrawn": ["withdraw"],
    },
    create=lambda people: make_claim(product=people.product, filed_by=people.subscriber),
    fire={
        "notify_vendor": lambda c, p: service.claim_notify_vendor(claim=c),
        "contest": lambda c, p: service.claim_contest(
            claim=c, actor=None, statement="We are solvent."
        ),
        "mark_uncontested": lambda c, p: service.claim_mark_uncontested(claim=c),
        "release_voluntarily": lambda c, p: service.claim_release_voluntarily(
            claim=c, actor=p.staff, reason="The vendor's letter of 2 March asks us to release."
        ),
        "start_review": lambda c, p: service.claim_start_review(claim=c, actor=p.notary),
        "request_evidence": lambda c, p: service.claim_request_evidence(
            claim=c, notary=p.notary, reasons="Please add the court ruling."
        ),
        "provide_evidence": lambda c, p: service.claim_provide_evidence(
            claim=c, actor=p.subscriber, uploads=[Upload("more.pdf", EVIDENCE_PDF)]
        ),
        "approve": lambda c, p: service.claim_approve(
            claim=c, notary=p.notary, reasons="The court ruling proves insolvency."
        ),
        "reject": lambda c, p: service.claim_reject(
            claim=c, notary=p.notary, reasons="No evidence of insolvency."
        ),
        "release": lambda c, p: service.claim_release(claim=c, actor=None),
        "withdraw": lambda c, p: service.claim_withdraw(claim=c, actor=p.subscriber),
    },
)


@pytest.fixture
def people(product, notary, staff, subscriber, other_customer, licence) -> SimpleNamespace:
    # An eligible claimant: an active subscription and an acknowledged deposit.
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)
    return SimpleNamespace(
        product=product,
        notary=notary,
        staff=staff,
        subscriber=subscriber,
        other_customer=other_customer,
    )


def test_the_model_declares_exactly_the_transitions_of_the_brief() -> None:
    assert declared_table(ReleaseClaim) == TABLE


@pytest.mark.parametrize(("source", "name"), CLAIMS.allowed_pairs())
def test_each_allowed_transition_moves_and_is_audited(source, name, people) -> None:
    assert_allowed(CLAIMS, source, name, people)


@pytest.mark.parametrize(("state", "name"), CLAIMS.refused_pairs())
def test_every_other_transition_is_refused_and_changes_nothing(state, name, people) -> None:
    assert_refused(CLAIMS, state, name, people)


@pytest.mark.parametrize("who", ["staff", "subscriber", "other_customer"])
def test_nobody_but_a_notary_approves_a_release(who, people) -> None:
    claim = CLAIMS.reach("under_review", people)
    before = snapshot(claim)
    with pytest.raises(PermissionDenied):
        service.claim_approve(claim=claim, notary=getattr(people, who), reasons="Looks fine.")
    assert snapshot(claim) == before


def test_another_organisation_cannot_withdraw_the_claim(people) -> None:
    claim = CLAIMS.reach("filed", people)
    before = snapshot(claim)
    with pytest.raises(PermissionDenied):
        service.claim_withdraw(claim=claim, actor=people.other_customer)
    assert snapshot(claim) == before


@pytest.mark.parametrize("reasons", ["", "   \n"])
def test_a_decision_needs_written_reasons(reasons, people) -> None:
    claim = CLAIMS.reach("under_review", people)
    before = snapshot(claim)
    with pytest.raises(ValidationError, match="written reasons"):
        service.claim_reject(claim=claim, notary=people.notary, reasons=reasons)
    assert snapshot(claim) == before


def test_only_customer_users_file_claims(people) -> None:
    with pytest.raises(PermissionDenied):
        service.claim_file(
            product=people.product, filed_by=people.staff, condition="insolvency", statement="x"
        )
    assert not ReleaseClaim.objects.exists()


def test_an_unknown_release_condition_is_refused(people) -> None:
    with pytest.raises(ValidationError, match="condition"):
        service.claim_file(
            product=people.product,
            filed_by=people.subscriber,
            condition="boredom",
            statement="We would like the source.",
        )
    assert not ReleaseClaim.objects.exists()
