"""A verification whose process died never leaves source on disk: once its own lease
expires, the sweeper records it "not verified (interrupted)" and removes its intake
copy (and the scratch folder a build unpacked it into); orphaned copies without a live
lease go too, and at start-up, without the database, by the expiry each copy carries."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.utils import timezone

from escrow.models import Deposit
from escrow.services import intake
from escrow.services.deposits import deposit_register, lease_owner_new, lease_token
from escrow.services.recipients import seal_recipients
from escrow.services.sweeper import deposits_sweep, intake_orphans_remove
from tests import archives
from tests.verification.projects import PASSING_RECIPE, intake_files, project
from verification.models import BuildVerification, VerificationState
from verification.services import verification_copy_path, verification_start

pytestmark = pytest.mark.usefixtures("verifying")


def waiting(pipeline: Any, version: str = "1.0.0") -> BuildVerification:
    """A deposit stored over the API whose verification task never ran (its worker was
    killed before it took the task): pending, holding the intake copy under its lease."""
    response = pipeline.put(version, archives.tar_gz(project(PASSING_RECIPE)), run_tasks=False)
    assert response.status_code == 202
    record = BuildVerification.objects.get(deposit_id=response.json()["id"])
    assert record.state == VerificationState.PENDING
    return record


def test_a_killed_verification_is_interrupted_and_its_copy_removed_once_its_lease_expires(
    pipeline: Any, settings: Any
) -> None:
    record = waiting(pipeline)
    copy = verification_copy_path(record.deposit_id, record.lease_token)
    assert copy.is_file() and oct(copy.stat().st_mode & 0o777) == "0o600"
    assert record.lease_until is not None
    # The copy carries its lease's expiry, for the start-up cleanup.
    assert abs(copy.stat().st_mtime - record.lease_until.timestamp()) < 0.01
    deposit_state = Deposit.objects.get(pk=record.deposit_id).state

    # Within its lease the sweeper leaves it alone.
    sweep = deposits_sweep(now=timezone.now())
    assert sweep.interrupted == [] and copy.is_file()

    later = record.lease_until + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        sweep = deposits_sweep(now=timezone.now())
    assert sweep.interrupted == [f"#{record.pk} of deposit #{record.deposit_id}"]
    assert copy.name in sweep.removed
    assert intake_files(settings) == []
    record.refresh_from_db()
    assert record.state == VerificationState.INTERRUPTED
    assert record.badge_label == "Not verified (interrupted)"
    assert record.problem.startswith("not verified (interrupted): the process verifying")
    assert record.lease_until is None and record.finished_at == later
    # The deposit's own state is untouched, and the API says what happened.
    assert Deposit.objects.get(pk=record.deposit_id).state == deposit_state
    shown = pipeline.get(record.deposit_id).json()["verification"]
    assert shown["state"] == "interrupted"
    assert shown["outcome"] == "Not verified (interrupted)"


def test_a_build_killed_while_running_is_interrupted_and_its_scratch_removed(
    pipeline: Any, settings: Any
) -> None:
    record = waiting(pipeline)
    assert verification_start(
        verification=record,
        owner="otherhost:4242:ffff",
        seconds=settings.ESCROW_VERIFY_LEASE_SECONDS,
    )
    record.refresh_from_db()
    assert record.state == VerificationState.RUNNING
    assert record.lease_owner.startswith("otherhost:4242:")
    copy = verification_copy_path(record.deposit_id, record.lease_token)
    scratch = copy.with_suffix(".scratch")
    (scratch / "src").mkdir(parents=True)
    (scratch / "src" / "main.c").write_bytes(b"int main(void) { return 0; }\n")
    (scratch / "src").chmod(0o500)  # a build may leave read-only folders behind

    assert record.lease_until is not None
    with time_machine.travel(record.lease_until + timedelta(seconds=1), tick=False):
        sweep = deposits_sweep(now=timezone.now())
    assert sorted(sweep.removed) == sorted([copy.name, scratch.name])
    assert not copy.exists() and not scratch.exists()
    record.refresh_from_db()
    assert record.state == VerificationState.INTERRUPTED
    assert "otherhost:4242:" in record.problem


def test_a_verification_copy_without_a_live_lease_is_removed_and_a_live_one_kept(
    pipeline: Any, settings: Any
) -> None:
    record = waiting(pipeline)
    live = verification_copy_path(record.deposit_id, record.lease_token)
    folder = Path(settings.ESCROW_INTAKE_DIR)
    # A copy a receiving process left when it died before the record was made, and one
    # named by a lease the verification no longer holds.
    orphan = folder / "deposit-999.0123abcd.verify"
    orphan.write_bytes(b"plaintext")
    stale = folder / f"deposit-{record.deposit_id}.00000000.verify"
    stale.write_bytes(b"plaintext")
    orphan_scratch = folder / "deposit-999.0123abcd.scratch"
    orphan_scratch.mkdir()

    sweep = deposits_sweep(now=timezone.now())
    assert sorted(sweep.removed) == sorted([orphan.name, stale.name, orphan_scratch.name])
    assert intake_files(settings) == [live.name]
    record.refresh_from_db()
    assert record.state == VerificationState.PENDING


def test_start_up_removes_verification_copies_whose_lease_expired_without_the_database(
    settings: Any,
) -> None:
    folder = Path(settings.ESCROW_INTAKE_DIR)
    folder.mkdir(parents=True)
    now = time.time()

    def copy(name: str, expires: float, *, scratch: bool = False) -> list[Path]:
        path = folder / f"{name}.verify"
        path.write_bytes(b"plaintext")
        os.utime(path, (expires, expires))
        made = [path]
        if scratch:
            folder_path = folder / f"{name}.scratch"
            (folder_path / "src").mkdir(parents=True)
            made.append(folder_path)
        return made

    expired = copy("deposit-3.0ddba11", now - 1, scratch=True)
    live = copy("deposit-4.cafe0123", now + 600, scratch=True)
    # Written longer ago than a deposit's lease, but its own lease was renewed (the build
    # still runs): its modification time is that lease's expiry, not when it was written.
    renewed = copy("deposit-5.0badf00d", now + 60)

    apps.get_app_config("escrow").ready()  # what every process does as it starts
    assert not any(path.exists() for path in expired)
    assert all(path.exists() for path in live + renewed)
    assert intake_orphans_remove(older_than=settings.ESCROW_DEPOSIT_LEASE_SECONDS) == []


def test_a_deposit_whose_receiver_died_after_sealing_is_stored_elsewhere_and_not_verified(
    product: Any,
    staff: Any,
    notary_identity: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The receiving process sealed the deposit, kept its intake copy, and died before
    storing it. The sweeper has the deposit stored from the primary site by another
    process, where no plaintext is: its verification says "not verified (interrupted)",
    nothing is built, and the copy the dead process left is removed."""
    body = archives.tar_gz(project(PASSING_RECIPE))
    owner = lease_owner_new()
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256=archives.sha256(body), lease_owner=owner
    )
    copy = verification_copy_path(deposit.pk, lease_token(owner))
    problem, holds_recipe = intake._check_and_seal(
        deposit, io.BytesIO(body), seal_recipients(), intake._Lease(deposit, owner), copy
    )
    deposit.refresh_from_db()
    assert (deposit.state, problem, holds_recipe) == ("sealed", "", True)
    assert copy.is_file()  # the dead process's plaintext

    after = timezone.now() + timedelta(seconds=settings.ESCROW_DEPOSIT_LEASE_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        sweep = deposits_sweep(now=after)
    assert sweep.resumed == [f"#{deposit.pk} sealed: store queued again"]
    assert copy.name in sweep.removed
    assert intake_files(settings) == []
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    record = BuildVerification.objects.get(deposit_id=deposit.pk)
    assert record.state == VerificationState.INTERRUPTED
    assert "stopped before verification could start" in record.problem
