"""A deposit that failed before its sealed file reached the primary site starts over from
``received`` when the pipeline uploads the same archive again, under that upload's lease;
one whose sealed file is in the primary is left to staff (deposit_retry)."""

from __future__ import annotations

import pytest

from escrow.services.deposits import (
    deposit_fail,
    deposit_resume_upload,
    deposit_seal,
    deposit_store,
    deposit_verify,
)
from records.models import AuditEntry
from records.services.transitions import TransitionRefused
from tests.factories import make_deposit
from tests.state_machines import snapshot


def walk_to(deposit, state: str):
    """Move a freshly registered deposit on to ``state`` with stand-in values."""
    steps = ["received", "verified", "sealed", "stored"]
    for step in steps[1 : steps.index(state) + 1]:
        if step == "verified":
            deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
        elif step == "sealed":
            deposit_seal(
                deposit=deposit,
                ciphertext_sha256="b" * 64,
                ciphertext_size=1,
                sealed_for=[],
                attempt="0123abcd",
            )
        else:
            deposit_store(deposit=deposit)
    return deposit


@pytest.mark.parametrize("step", ["received", "verified"])
def test_a_deposit_failed_before_sealing_returns_to_the_failed_step_with_an_audit_row(
    step, product
) -> None:
    deposit = walk_to(make_deposit(product=product), step)
    deposit_fail(deposit=deposit, problem="intake: disk full")
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", step)

    assert deposit.lease_owner == ""  # a failed deposit is nobody's work
    resumed = deposit_resume_upload(
        deposit=deposit,
        actor_label="token:0123abcd",
        reason="the pipeline uploaded the same archive again",
        lease_owner="web-1:42:feedface",
    )
    assert resumed is deposit
    deposit.refresh_from_db()
    # Checked again from the start: the new upload brings the archive.
    assert (deposit.state, deposit.failed_from, deposit.problem) == ("received", "", "")
    assert deposit.lease_owner == "web-1:42:feedface"
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None
    assert (entry.action, entry.from_state, entry.to_state) == (
        "deposit.retry",
        "failed",
        "received",
    )
    assert entry.object_id == str(deposit.pk)
    assert entry.actor is None
    assert entry.actor_label == "token:0123abcd"
    assert entry.reason == "the pipeline uploaded the same archive again"


@pytest.mark.parametrize("step", ["sealed", "stored"])
def test_a_deposit_failed_after_sealing_is_refused_and_unchanged(step, product) -> None:
    deposit = walk_to(make_deposit(product=product), step)
    deposit_fail(deposit=deposit, problem="store in primary: unreachable")
    deposit.refresh_from_db()
    before = snapshot(deposit)
    with pytest.raises(TransitionRefused) as refused:
        deposit_resume_upload(
            deposit=deposit, actor_label="token:0123abcd", reason="again", lease_owner="w:1:ab"
        )
    assert str(refused.value) == (
        f"Deposit #{deposit.pk} failed after it was sealed; staff retry it (deposit_retry)."
    )
    assert snapshot(deposit) == before
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", step)


def test_a_deposit_that_never_failed_is_not_resumed(product) -> None:
    deposit = make_deposit(product=product)
    before = snapshot(deposit)
    with pytest.raises(TransitionRefused, match=f"deposit #{deposit.pk}: it is 'received'"):
        deposit_resume_upload(
            deposit=deposit, actor_label="token:0123abcd", reason="again", lease_owner="w:1:ab"
        )
    assert snapshot(deposit) == before
    assert deposit.state == "received"


def test_a_deposit_sealed_only_into_an_outbox_of_old_starts_over(product) -> None:
    """Sealed before sealed files went to the primary site (no attempt recorded): its
    sealed file was on one machine only, so the upload again redoes it."""
    deposit = make_deposit(product=product)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    deposit_fail(deposit=deposit, problem="store: not in this machine's outbox")
    deposit_resume_upload(
        deposit=deposit, actor_label="token:0123abcd", reason="again", lease_owner="w:1:ab"
    )
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from, deposit.lease_owner) == ("received", "", "w:1:ab")
