"""Storing a sealed deposit from the outbox in the primary site: the retry path, a missing
outbox, and a sealed file that changed while it waited."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from escrow.models import Deposit, DepositCopy
from escrow.services.deposits import deposit_retry
from escrow.services.intake import deposit_store_sealed
from records.models import AuditEntry
from tests.deposits import deposit_through_pipeline


def primary() -> Path:
    return Path(settings.ESCROW_SITES[0]["path"])


def outbox(deposit: Deposit) -> Path:
    return settings.ESCROW_INTAKE_DIR / "outbox" / f"deposit-{deposit.pk}.age"


@pytest.fixture
def sealed_waiting(product, staff, notary_identity) -> Deposit:
    """A deposit whose store failed (the primary was not a folder), retried by staff:
    ``sealed`` again, its sealed file and manifest waiting in the outbox. The retry's
    follow-up task is not run, so each test calls deposit_store_sealed itself."""
    folder = primary()
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")
    deposit = deposit_through_pipeline(product=product, staff=staff)
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem.startswith("store in primary:")
    folder.unlink()
    deposit_retry(deposit=deposit, actor=staff, reason="primary is back")
    deposit.refresh_from_db()
    assert deposit.state == "sealed"
    assert outbox(deposit).exists()
    assert outbox(deposit).with_suffix(".manifest.json").exists()
    return deposit


def test_a_retried_deposit_is_stored_verified_and_the_outbox_emptied(
    sealed_waiting, django_capture_on_commit_callbacks
) -> None:
    deposit = sealed_waiting
    sealed_bytes = outbox(deposit).read_bytes()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        stored = deposit_store_sealed(deposit=deposit)
    deposit.refresh_from_db()
    assert stored.state == deposit.state == "stored"
    assert len(queued) == 1  # replication is queued once the copies are recorded
    copies = {copy.kind: copy for copy in DepositCopy.objects.filter(deposit=deposit)}
    assert set(copies) == {"sealed", "manifest", "signature"}
    assert {copy.site for copy in copies.values()} == {"primary"}
    assert (primary() / deposit.object_key("sealed")).read_bytes() == sealed_bytes
    assert copies["sealed"].sha256 == deposit.ciphertext_sha256
    assert copies["manifest"].sha256 == deposit.manifest_sha256
    assert (primary() / deposit.object_key("signature")).read_bytes() == (
        deposit.manifest_signature.encode()
    )
    assert not outbox(deposit).exists()
    assert not outbox(deposit).with_suffix(".manifest.json").exists()


@pytest.mark.parametrize("missing", ["sealed file", "manifest"])
def test_a_missing_outbox_file_fails_the_deposit_naming_the_file(missing, sealed_waiting) -> None:
    deposit = sealed_waiting
    gone = (
        outbox(deposit)
        if missing == "sealed file"
        else outbox(deposit).with_suffix(".manifest.json")
    )
    gone.unlink()
    audit_before = AuditEntry.objects.count()

    deposit_store_sealed(deposit=deposit)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem == (
        f"store: {gone} is not in this machine's outbox; "
        "the pipeline must upload the archive again."
    )
    assert not DepositCopy.objects.filter(deposit=deposit).exists()
    assert not (primary() / deposit.object_key("sealed")).exists()
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert AuditEntry.objects.count() == audit_before + 1
    assert entry is not None
    assert (entry.action, entry.from_state, entry.to_state) == ("deposit.fail", "sealed", "failed")


def test_a_sealed_file_that_changed_in_the_outbox_is_not_stored(sealed_waiting) -> None:
    deposit = sealed_waiting
    tampered = outbox(deposit)
    tampered.write_bytes(tampered.read_bytes() + b"\x00")

    deposit_store_sealed(deposit=deposit)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem.startswith("store in primary:")
    assert not DepositCopy.objects.filter(deposit=deposit).exists()
    assert not (primary() / deposit.object_key("sealed")).exists()
    assert tampered.exists()  # kept for whoever looks into it
