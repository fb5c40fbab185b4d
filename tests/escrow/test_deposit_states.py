from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from escrow.models import Deposit
from escrow.services import deposits as service
from records.models import AuditEntry
from records.services.transitions import TransitionRefused
from tests.factories import make_deposit
from tests.state_machines import (
    RETURNS_TO_FAILED_STEP,
    Machine,
    assert_allowed,
    assert_refused,
    declared_table,
    snapshot,
)

# From the design brief: received -> verified -> sealed -> stored -> replicated ->
# acknowledged; rejected (bad input); failed (infrastructure, retried).
TABLE = {
    "verify": {"received": "verified"},
    "seal": {"verified": "sealed"},
    "store": {"sealed": "stored"},
    "replicate": {"stored": "replicated"},
    "acknowledge": {"replicated": "acknowledged"},
    "reject": {"received": "rejected"},
    "fail": {state: "failed" for state in ["received", "verified", "sealed", "stored"]},
    "retry": {"failed": RETURNS_TO_FAILED_STEP},
}

DEPOSITS = Machine(
    model=Deposit,
    table=TABLE,
    paths={
        "received": [],
        "verified": ["verify"],
        "sealed": ["verify", "seal"],
        "stored": ["verify", "seal", "store"],
        "replicated": ["verify", "seal", "store", "replicate"],
        "acknowledged": ["verify", "seal", "store", "replicate", "acknowledge"],
        "rejected": ["reject"],
        "failed": ["verify", "seal", "store", "fail"],
    },
    create=lambda people: make_deposit(product=people.product),
    fire={
        "verify": lambda d, p: service.deposit_verify(
            deposit=d, manifest={"schema": "test"}, manifest_sha256="a" * 64, signature="sig"
        ),
        "seal": lambda d, p: service.deposit_seal(
            deposit=d, ciphertext_sha256="b" * 64, ciphertext_size=100, sealed_for=["age1..."]
        ),
        "store": lambda d, p: service.deposit_store(deposit=d),
        "replicate": lambda d, p: service.deposit_replicate(deposit=d),
        "acknowledge": lambda d, p: service.deposit_acknowledge(deposit=d, notary=p.notary),
        "reject": lambda d, p: service.deposit_reject(deposit=d, problem="not an archive"),
        "fail": lambda d, p: service.deposit_fail(deposit=d, problem="primary site down"),
        "retry": lambda d, p: service.deposit_retry(deposit=d, actor=p.staff),
    },
)


@pytest.fixture
def people(product, notary, staff, subscriber) -> SimpleNamespace:
    return SimpleNamespace(product=product, notary=notary, staff=staff, subscriber=subscriber)


def test_the_model_declares_exactly_the_transitions_of_the_brief() -> None:
    assert declared_table(Deposit) == TABLE


@pytest.mark.parametrize(("source", "name"), DEPOSITS.allowed_pairs())
def test_each_allowed_transition_moves_and_is_audited(source, name, people) -> None:
    assert_allowed(DEPOSITS, source, name, people)


@pytest.mark.parametrize(("state", "name"), DEPOSITS.refused_pairs())
def test_every_other_transition_is_refused_and_changes_nothing(state, name, people) -> None:
    assert_refused(DEPOSITS, state, name, people)


@pytest.mark.parametrize("step", ["sealed", "stored"])
def test_a_retry_resumes_at_the_step_that_failed(step, people) -> None:
    deposit = DEPOSITS.reach(step, people)
    service.deposit_fail(deposit=deposit, problem="replica unreachable")
    assert (deposit.state, deposit.failed_from, deposit.problem) == (
        "failed",
        step,
        "replica unreachable",
    )
    service.deposit_retry(deposit=deposit, actor=None)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == (step, "")
    assert deposit.problem == ""  # the old reason no longer describes it
    task = "escrow.deposit_store_sealed" if step == "sealed" else "escrow.deposit_replicate_copies"
    assert deposit.lease_owner == f"queued:{task}"  # handed to the queued task, never ownerless
    assert deposit.lease_expires_at is not None and deposit.lease_expires_at > timezone.now()


@pytest.mark.parametrize("step", ["received", "verified"])
def test_a_deposit_that_failed_before_sealing_needs_a_new_upload(step, people) -> None:
    deposit = DEPOSITS.reach(step, people)
    service.deposit_fail(deposit=deposit, problem="intake disk full")
    before = snapshot(deposit)
    with pytest.raises(TransitionRefused, match="upload the same archive again"):
        service.deposit_retry(deposit=deposit, actor=people.staff)
    assert snapshot(deposit) == before


def test_a_rejection_keeps_its_reason(people) -> None:
    deposit = make_deposit(product=people.product)
    service.deposit_reject(deposit=deposit, problem="member ../etc/passwd leaves the archive")
    deposit.refresh_from_db()
    assert deposit.state == "rejected"
    assert deposit.problem == "member ../etc/passwd leaves the archive"
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None and entry.reason == deposit.problem


@pytest.mark.parametrize("who", ["subscriber", "staff"])
def test_only_a_notary_acknowledges(who, people) -> None:
    deposit = DEPOSITS.reach("replicated", people)
    before = snapshot(deposit)
    with pytest.raises(PermissionDenied):
        service.deposit_acknowledge(deposit=deposit, notary=getattr(people, who))
    assert snapshot(deposit) == before


@pytest.mark.parametrize("who", ["subscriber", "notary"])
def test_only_staff_or_the_system_retry(who, people) -> None:
    deposit = DEPOSITS.reach("failed", people)
    before = snapshot(deposit)
    with pytest.raises(PermissionDenied):
        service.deposit_retry(deposit=deposit, actor=getattr(people, who))
    assert snapshot(deposit) == before


def test_the_state_field_cannot_be_written_directly(people) -> None:
    deposit = make_deposit(product=people.product)
    with pytest.raises(AttributeError):
        deposit.state = "acknowledged"
