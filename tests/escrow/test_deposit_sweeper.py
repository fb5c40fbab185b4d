"""The sweeper takes every expired lease and applies its state's recovery rule:
received/verified fail with the reason (staff are mailed, the status URL shows it),
sealed is stored from the primary site, stored is replicated again. It removes every
intake file no live lease owns, and it runs every minute from the schedule."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from escrow.api.serializers import DepositSerializer
from escrow.models import Deposit, DepositCopy
from escrow.services import intake
from escrow.services.deposits import (
    deposit_register,
    deposit_seal,
    deposit_verify,
    lease_owner_new,
    lease_token,
)
from escrow.services.intake import deposit_receive
from escrow.services.recipients import seal_recipients
from escrow.services.sweeper import deposits_sweep
from escrow.services.tokens import token_create
from escrow.tasks import deposits_sweep_task
from records.models import AuditEntry
from records.schedule import jobs_run_due
from tests import archives

BODY = archives.tar_gz()
SHA = archives.sha256(BODY)
DEAD = "web-1:4242:0ddba11"


@pytest.fixture(autouse=True)
def staff_mail(settings) -> None:
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]


def after_the_lease() -> Any:
    return timezone.now() + timedelta(seconds=settings.ESCROW_DEPOSIT_LEASE_SECONDS + 1)


def left_by(deposit: Deposit, owner: str, suffix: str, size: int = 1024) -> Any:
    """An intake file the dead process left: plaintext or partial ciphertext."""
    settings.ESCROW_INTAKE_DIR.mkdir(parents=True, exist_ok=True)
    path = settings.ESCROW_INTAKE_DIR / f"deposit-{deposit.pk}.{lease_token(owner)}.{suffix}"
    path.write_bytes(b"x" * size)
    return path


def sealed_durably(product, version: str = "1.0.0") -> Deposit:
    owner = lease_owner_new()
    deposit = deposit_register(
        product=product, version=version, archive_sha256=SHA, lease_owner=owner
    )
    intake._check_and_seal(
        deposit, io.BytesIO(BODY), seal_recipients(), intake._Lease(deposit, owner)
    )
    deposit.refresh_from_db()
    assert deposit.state == "sealed"
    return deposit


@pytest.mark.parametrize(
    ("verified", "doing"),
    [(False, "receiving the upload"), (True, "checking and sealing the archive")],
    ids=["received", "verified"],
)
def test_a_deposit_whose_receiver_died_fails_with_the_reason_and_staff_are_told(
    verified, doing, product, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256=SHA, lease_owner=DEAD
    )
    if verified:
        deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    state = deposit.state
    plaintext = left_by(deposit, DEAD, "plain", size=129 * 1024)
    partial = left_by(deposit, DEAD, "age.part")

    with django_capture_on_commit_callbacks(execute=True):
        sweep = deposits_sweep(now=after_the_lease())
    deposit.refresh_from_db()
    problem = (
        f"interrupted while {doing}: the process working on it ({DEAD}) stopped renewing "
        "its lease, and the source it held is gone. Upload the same archive again; that "
        "starts the deposit over."
    )
    assert (deposit.state, deposit.failed_from, deposit.problem) == ("failed", state, problem)
    assert (deposit.lease_owner, deposit.lease_expires_at) == ("", None)
    assert sweep.failed == [f"#{deposit.pk} {state}: {problem}"]
    assert sorted(sweep.removed) == sorted([plaintext.name, partial.name])
    assert not plaintext.exists() and not partial.exists()
    assert [message.subject for message in mailoutbox] == [
        "[Django] Deposit ledger-pro 1.0.0 failed"
    ]
    assert problem in mailoutbox[0].body
    # The pipeline's status URL says the same.
    shown = DepositSerializer(deposit).data
    assert (shown["state"], shown["problem"]) == ("failed", problem)
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None
    assert (entry.action, entry.from_state, entry.reason) == ("deposit.fail", state, problem)


def test_a_live_lease_and_its_files_are_left_alone(product, mailoutbox) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256=SHA, lease_owner=DEAD
    )
    working = left_by(deposit, DEAD, "plain")
    sweep = deposits_sweep(now=timezone.now())
    deposit.refresh_from_db()
    assert (deposit.state, deposit.lease_owner) == ("received", DEAD)
    assert (sweep.failed, sweep.resumed, sweep.removed) == ([], [], [])
    assert working.exists()
    assert mailoutbox == []


def test_a_sealed_deposit_is_stored_and_replicated_from_the_primary(
    product, notary_identity, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    deposit = sealed_durably(product)
    with django_capture_on_commit_callbacks(execute=True):
        sweep = deposits_sweep(now=after_the_lease())
    assert sweep.resumed == [f"#{deposit.pk} sealed: store queued again"]
    assert sweep.failed == []
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")
    assert DepositCopy.objects.filter(deposit=deposit).count() == 6
    assert mailoutbox == []


def test_a_deposit_sealed_only_into_an_outbox_of_old_fails(product, mailoutbox) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256=SHA, lease_owner=DEAD
    )
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    sweep = deposits_sweep(now=after_the_lease())
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem.startswith(
        "interrupted while storing (its sealed file was only in that machine's outbox)"
    )
    assert len(sweep.failed) == 1


def test_a_stored_deposit_whose_replication_was_lost_is_replicated(
    product, staff, notary_identity, settings, django_capture_on_commit_callbacks
) -> None:
    issued = token_create(product=product, label="CI", actor=staff)
    with django_capture_on_commit_callbacks(execute=False):  # the replication task is lost
        deposit_receive(
            token=issued.token,
            version="1.0.0",
            body=io.BytesIO(BODY),
            claimed_sha256=SHA,
            content_length=len(BODY),
            pipeline={},
        )
    deposit = Deposit.objects.get()
    assert deposit.state == "stored"
    assert deposit.lease_owner == "queued:escrow.deposit_replicate_copies"
    # Within the replication's lease nothing happens; after it, replication is queued again.
    assert deposits_sweep(now=after_the_lease()).resumed == []
    lost = timezone.now() + timedelta(seconds=settings.ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        sweep = deposits_sweep(now=lost)
    assert sweep.resumed == [f"#{deposit.pk} stored: replication queued again"]
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert DepositCopy.objects.filter(deposit=deposit).count() == 6


def test_orphaned_intake_files_are_removed_and_others_kept(product) -> None:
    live = deposit_register(product=product, version="1.0.0", archive_sha256=SHA, lease_owner=DEAD)
    mine = left_by(live, DEAD, "plain")
    stale = left_by(live, "web-9:1:00ff00ff", "plain")  # an earlier, dead attempt
    folder = settings.ESCROW_INTAKE_DIR
    gone_deposit = folder / "deposit-999999.abcdef01.age.part"
    gone_deposit.write_bytes(b"partial")
    (folder / "uploads").mkdir()  # Django's spool folder for evidence forms: not ours
    unrelated = folder / "README"
    unrelated.write_text("not an intake file")

    # Hostile names: a link named like an intake file goes as a link, never its target;
    # a folder named like one is not ours to empty.
    outside = folder.parent / "precious.txt"
    outside.write_text("not in the intake folder")
    link = folder / "deposit-5.abcdef02.plain"
    link.symlink_to(outside)
    lookalike = folder / "deposit-6.abcdef03.plain"
    lookalike.mkdir()

    sweep = deposits_sweep(now=timezone.now())
    assert sorted(sweep.removed) == sorted([stale.name, gone_deposit.name, link.name])
    assert mine.exists() and unrelated.exists() and (folder / "uploads").is_dir()
    assert not stale.exists() and not gone_deposit.exists()
    assert not link.is_symlink() and outside.read_text() == "not in the intake folder"
    assert lookalike.is_dir()


def test_a_receiver_that_lost_its_lease_stops_and_changes_nothing(
    product, staff, notary_identity, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    """The receiving process stalled past its lease; meanwhile the sweeper (on another
    machine) failed the deposit. When the receiver wakes, it must not carry on."""
    issued = token_create(product=product, label="CI", actor=staff)

    class StallingBody:
        calls = 0

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls == 1:
                return BODY
            with django_capture_on_commit_callbacks(execute=True):
                deposits_sweep(now=after_the_lease())
            return b""

    received = deposit_receive(
        token=issued.token,
        version="1.0.0",
        body=StallingBody(),  # type: ignore[arg-type]
        claimed_sha256=SHA,
        content_length=len(BODY),
        pipeline={},
    )
    deposit = received.deposit
    assert (deposit.state, deposit.failed_from) == ("failed", "received")
    assert deposit.problem.startswith("interrupted while receiving the upload")
    assert [
        entry.action
        for entry in AuditEntry.objects.filter(
            object_id=str(deposit.pk), action__startswith="deposit."
        )
    ] == [
        "deposit.receive",
        "deposit.fail",
    ]
    assert list(settings.ESCROW_INTAKE_DIR.iterdir()) == []
    assert not DepositCopy.objects.exists()


def test_the_sweep_runs_every_minute_from_the_schedule(
    product, django_capture_on_commit_callbacks
) -> None:
    assert settings.CELERY_BEAT_SCHEDULE["deposits-sweep"] == {
        "task": "escrow.deposits_sweep",
        "schedule": 60,
    }
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256=SHA, lease_owner=DEAD
    )
    now = after_the_lease()
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(now):
        runs = {run.name: run for run in jobs_run_due(now=now)}
    assert runs["deposits-sweep"].ok
    assert runs["deposits-sweep"].outcome == "{'failed': 1, 'resumed': 0, 'removed': 0}"
    deposit.refresh_from_db()
    assert deposit.state == "failed"
    # Not due again within the minute; due again after it.
    assert "deposits-sweep" not in {r.name for r in jobs_run_due(now=now + timedelta(seconds=59))}
    assert "deposits-sweep" in {r.name for r in jobs_run_due(now=now + timedelta(seconds=60))}
    assert deposits_sweep_task.name == "escrow.deposits_sweep"


def test_start_up_removes_the_intake_files_of_expired_leases_without_asking_the_database(
    settings,
) -> None:
    # No ``db`` fixture: any query here fails the test (pytest-django blocks it).
    from django.apps import apps

    from escrow.services.sweeper import intake_orphans_remove

    folder = settings.ESCROW_INTAKE_DIR
    folder.mkdir(parents=True)
    lease = settings.ESCROW_DEPOSIT_LEASE_SECONDS
    now = time.time()

    def files(name: str, *, marker_at: float | None, written_at: float) -> list[Any]:
        data = [folder / f"{name}.plain", folder / f"{name}.age.part"]
        for path in data:
            path.write_bytes(b"half an archive")
            os.utime(path, (written_at, written_at))
        if marker_at is not None:
            marker = folder / f"{name}.lease"
            marker.touch()
            os.utime(marker, (marker_at, marker_at))
            data.append(marker)
        return data

    # Its lease ran out a moment ago, though the process wrote until it was killed.
    expired = files("deposit-7.0ddba11", marker_at=now - 1, written_at=now - 0.5)
    # Still live: the marker holds the renewed expiry, though nothing was written lately
    # (the process is checking the archive, or putting it in the primary site).
    live = files("deposit-8.cafe0123", marker_at=now + lease, written_at=now - 2 * lease)
    # No marker (an older version's file): judged by its age.
    stale = files("deposit-9.0badf00d", marker_at=None, written_at=now - lease - 1)
    fresh = files("deposit-10.0badf00d", marker_at=None, written_at=now)
    other = folder / "notes.txt"
    other.write_text("not an intake file")
    os.utime(other, (now - 2 * lease, now - 2 * lease))

    apps.get_app_config("escrow").ready()  # what every process does as it starts
    assert not any(path.exists() for path in expired + stale)
    assert all(path.exists() for path in live + fresh)
    assert other.exists()
    assert intake_orphans_remove(older_than=lease) == []


def test_the_receiving_process_keeps_its_marker_at_its_leases_expiry(
    product, staff, notary_identity
) -> None:
    issued = token_create(product=product, label="CI", actor=staff)
    seen: list[tuple[float, float]] = []

    class WatchedBody:
        def __init__(self) -> None:
            self.chunks = [BODY[: len(BODY) // 2], BODY[len(BODY) // 2 :], b""]

        def read(self, size: int = -1) -> bytes:
            markers = list(settings.ESCROW_INTAKE_DIR.glob("deposit-*.lease"))
            if markers:
                deposit = Deposit.objects.get()
                assert deposit.lease_expires_at is not None
                seen.append((markers[0].stat().st_mtime, deposit.lease_expires_at.timestamp()))
            return self.chunks.pop(0)

    received = deposit_receive(
        token=issued.token,
        version="1.0.0",
        body=WatchedBody(),  # type: ignore[arg-type]
        claimed_sha256=SHA,
        content_length=len(BODY),
        pipeline={},
    )
    assert received.deposit.state == "stored"
    assert seen and all(abs(marker - lease) < 0.01 for marker, lease in seen)
    assert list(settings.ESCROW_INTAKE_DIR.iterdir()) == []
