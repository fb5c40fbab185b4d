"""Backups: made, verified, pruned by the published retention, restored, drilled."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from config.storage_sites import default_sites
from escrow.backups.service import (
    BackupError,
    BackupFailed,
    backup_drill,
    backup_identities,
    backup_restore,
    backup_run,
)
from escrow.backups.store import backup_store
from escrow.models import Backup
from records.models import AuditChainHead, AuditEntry
from records.services.audit import audit_anchors_read, audit_chain_verify, audit_record
from vault import age

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _backup_site(settings, tmp_path):
    settings.ESCROW_BACKUP_SITE = default_sites(tmp_path / "offsite")[0] | {"name": "backup"}
    settings.ESCROW_BACKUP_IDENTITY_PATH = tmp_path / "var" / "backup_identity.txt"
    settings.ESCROW_BACKUP_RECIPIENTS = []
    settings.ADMINS = [("staff", "staff@acme.example")]


def stored_path(settings, backup: Backup) -> Path:
    return Path(settings.ESCROW_BACKUP_SITE["path"]) / backup.key


def opened_bundle(settings, backup: Backup) -> tarfile.TarFile:
    plain = io.BytesIO()
    with stored_path(settings, backup).open("rb") as sealed:
        age.decrypt(sealed, plain, backup_identities())
    plain.seek(0)
    return tarfile.open(fileobj=plain)


def sqlite_only() -> None:
    if connection.vendor != "sqlite":
        pytest.skip(
            "restores into a SQLite file; on PostgreSQL the drill test restores with pg_restore"
        )


# Committed data: on PostgreSQL the dump reads through its own snapshot.
@pytest.mark.django_db(transaction=True)
def test_a_backup_holds_the_database_and_the_inventory_and_is_verified(settings, mailoutbox):
    audit_record(action="test.before_backup")
    backup = backup_run()
    assert backup.state == "ok"
    assert backup.kept_by == [] or "newest" in Backup.objects.get(pk=backup.pk).kept_by
    data = stored_path(settings, backup).read_bytes()
    assert data.startswith(b"age-encryption.org/v1")
    import hashlib

    assert hashlib.sha256(data).hexdigest() == backup.sha256
    bundle = opened_bundle(settings, backup)
    names = set(bundle.getnames())
    assert {"meta.json", "inventory.json"} <= names
    assert names & {"database.sqlite3", "database.pgdump"}
    meta = json.loads(bundle.extractfile("meta.json").read())  # type: ignore[union-attr]
    assert meta["tables"]["records_auditentry"] == AuditEntry.objects.count() - 1  # + backup.made
    assert mailoutbox == []


def test_a_backup_site_inside_a_vault_site_is_refused_and_the_failure_recorded(
    settings, mailoutbox
):
    settings.ADMINS = [("staff", "staff@acme.example")]
    settings.ESCROW_BACKUP_SITE = dict(settings.ESCROW_SITES[0]) | {"name": "backup"}
    backup = backup_run()
    assert backup.state == "failed"
    assert "another site than the original" in backup.problem
    assert mailoutbox[0].subject.endswith("Backup failed")
    assert not any(Path(settings.ESCROW_SITES[0]["path"]).rglob("backup-*"))


def test_an_unreachable_backup_site_fails_cleanly_and_prunes_nothing(settings, mailoutbox):
    first = backup_run(now=datetime(2026, 1, 1, tzinfo=UTC))
    from tests.s3server import closed_endpoint_url, s3_site_config

    settings.ESCROW_BACKUP_SITE = s3_site_config("backup", "backups", closed_endpoint_url())
    with pytest.raises(BackupFailed) as failed:
        backup_run(now=datetime(2026, 6, 1, tzinfo=UTC))
    assert failed.value.backup.state == "failed"
    first.refresh_from_db()
    assert first.pruned_at is None
    assert mailoutbox


def test_restore_into_an_empty_database_gives_back_what_was_backed_up(settings, tmp_path):
    sqlite_only()
    for step in range(3):
        audit_record(action="test.step", details={"step": step})
    backup = backup_run()
    target = tmp_path / "restored.sqlite3"
    meta = backup_restore(
        backup=backup,
        identities=backup_identities(),
        target={"ENGINE": "django.db.backends.sqlite3", "NAME": str(target)},
    )
    with sqlite3.connect(target) as restored:
        entries = restored.execute("SELECT COUNT(*) FROM records_auditentry").fetchone()[0]
    assert entries == meta["tables"]["records_auditentry"]


def test_restore_refuses_a_database_that_is_not_empty(settings, tmp_path):
    sqlite_only()
    backup = backup_run()
    target = tmp_path / "busy.sqlite3"
    with sqlite3.connect(target) as busy:
        busy.execute("CREATE TABLE precious (id INTEGER)")
        busy.execute("INSERT INTO precious VALUES (1)")
    with pytest.raises(BackupError, match="not empty; nothing restored"):
        backup_restore(
            backup=backup,
            identities=backup_identities(),
            target={"ENGINE": "django.db.backends.sqlite3", "NAME": str(target)},
        )
    with sqlite3.connect(target) as busy:
        assert busy.execute("SELECT COUNT(*) FROM precious").fetchone()[0] == 1


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_backup_is_refused_and_nothing_is_restored(settings, tmp_path, damage):
    sqlite_only()
    backup = backup_run()
    path = stored_path(settings, backup)
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[-100:]
    path.write_bytes(bytes(data))
    target = tmp_path / "restored.sqlite3"
    with pytest.raises(BackupError, match="is damaged"):
        backup_restore(
            backup=backup,
            identities=backup_identities(),
            target={"ENGINE": "django.db.backends.sqlite3", "NAME": str(target)},
        )
    assert not target.exists()


def test_a_wrong_identity_is_refused(settings, tmp_path):
    sqlite_only()
    backup = backup_run()
    with pytest.raises(BackupError, match="does not open this backup"):
        backup_restore(
            backup=backup,
            identities=[age.X25519Identity.generate()],
            target={"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "x.sqlite3")},
        )
    assert not (tmp_path / "x.sqlite3").exists()


def test_retention_keeps_the_published_policy_and_prunes_the_rest(settings):
    settings.ESCROW_BACKUP_KEEP_DAILY = 3
    settings.ESCROW_BACKUP_KEEP_WEEKLY = 0
    settings.ESCROW_BACKUP_KEEP_MONTHLY = 0
    settings.ESCROW_BACKUP_KEEP_YEARLY = 0
    start = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    made = [backup_run(now=start + timedelta(days=day)) for day in range(6)]
    alive = Backup.objects.filter(pruned_at__isnull=True, state="ok")
    assert {b.pk for b in alive} == {b.pk for b in made[-3:]}
    for backup in made[:3]:
        assert not stored_path(settings, backup).exists()
    for backup in made[-3:]:
        assert stored_path(settings, backup).exists()


def test_the_newest_backup_survives_a_clock_that_jumped_back(settings):
    settings.ESCROW_BACKUP_KEEP_DAILY = 1
    settings.ESCROW_BACKUP_KEEP_WEEKLY = 0
    settings.ESCROW_BACKUP_KEEP_MONTHLY = 0
    settings.ESCROW_BACKUP_KEEP_YEARLY = 0
    later = backup_run(now=datetime(2026, 5, 10, tzinfo=UTC))
    jumped = backup_run(now=datetime(2026, 5, 1, tzinfo=UTC))  # the clock went back 9 days
    jumped.refresh_from_db()
    later.refresh_from_db()
    assert jumped.pruned_at is None and "newest" in jumped.kept_by
    assert later.pruned_at is None and "daily" in later.kept_by


def test_nothing_is_pruned_after_a_failed_backup(settings):
    settings.ESCROW_BACKUP_KEEP_DAILY = 1
    settings.ESCROW_BACKUP_KEEP_WEEKLY = 0
    settings.ESCROW_BACKUP_KEEP_MONTHLY = 0
    settings.ESCROW_BACKUP_KEEP_YEARLY = 0
    old = backup_run(now=datetime(2026, 5, 1, tzinfo=UTC))
    settings.ESCROW_BACKUP_SITE = dict(settings.ESCROW_SITES[0]) | {"name": "backup"}
    assert backup_run(now=datetime(2026, 5, 9, tzinfo=UTC)).state == "failed"
    old.refresh_from_db()
    assert old.pruned_at is None


# Committed data: on PostgreSQL the dump reads through its own snapshot.
@pytest.mark.django_db(transaction=True)
def test_the_drill_restores_the_newest_backup_and_compares_it(settings):
    for step in range(3):
        audit_record(action="test.step", details={"step": step})
    backup_run()
    drill = backup_drill()
    assert drill.ok, drill.problem
    assert drill.report["audit_entries"] >= 3
    assert drill.report["rows"] > 0


def test_the_backup_command(settings, capsys):
    call_command("backup", "run")
    assert "Backup #" in capsys.readouterr().out
    call_command("backup", "list")
    assert "ok" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no backup #999"):
        call_command("backup", "restore", "999", "--identity", "/nonexistent")


# Committed data: on PostgreSQL the dump reads through its own snapshot.
@pytest.mark.django_db(transaction=True)
def test_every_backup_leaves_the_chain_head_beside_it_in_the_clear(settings):
    for step in range(3):
        audit_record(action="test.step", details={"step": step})
    backup = backup_run()
    meta = json.loads(opened_bundle(settings, backup).extractfile("meta.json").read())  # type: ignore[union-attr]

    (anchor,) = audit_anchors_read(site=backup_store())

    assert (anchor.sequence, anchor.entry_hash) == (
        meta["audit_head"]["sequence"],
        meta["audit_head"]["entry_hash"],
    )
    assert anchor.sequence == 3
    assert backup.key in anchor.source
    report = audit_chain_verify()
    assert report.intact and report.anchors == 1


@contextmanager
def append_only_guard_lifted() -> Iterator[None]:
    """Lifted and put back: in a committed (transaction=True) test nothing rolls it back."""
    guard = "records_auditentry_append_only"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE records_auditentry DISABLE TRIGGER {guard}")
        else:
            cursor.execute(f"DROP TRIGGER {guard}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE records_auditentry ENABLE TRIGGER {guard}")
            else:
                cursor.execute(
                    f"CREATE TRIGGER {guard} BEFORE UPDATE ON records_auditentry BEGIN SELECT "
                    "RAISE(ABORT, 'records_auditentry is append-only: UPDATE refused'); END"
                )


# Committed data: on PostgreSQL the dump reads through its own snapshot.
@pytest.mark.django_db(transaction=True)
def test_a_tail_rewritten_after_the_backup_is_named_from_its_first_entry(settings, mailoutbox):
    for step in range(6):
        audit_record(action="test.step", details={"step": step})
    backup_run()
    # Alter entry #3 and recompute every hash after it, and the head: the chain in the
    # database is consistent again, and only what lies outside it can tell.
    with append_only_guard_lifted():
        previous = AuditEntry.objects.get(sequence=2).entry_hash
        for entry in AuditEntry.objects.filter(sequence__gte=3).order_by("sequence"):
            entry.reason = "forged" if entry.sequence == 3 else entry.reason
            entry.previous_hash = previous
            entry.entry_hash = entry.compute_hash()
            entry.save(update_fields=["reason", "previous_hash", "entry_hash"])
            previous = entry.entry_hash
        AuditChainHead.objects.filter(id=1).update(entry_hash=previous)

    report = audit_chain_verify()
    drill = backup_drill()

    assert report.broken_sequence == 3
    assert report.problem.startswith("the chain was rewritten from entry #3")
    assert not drill.ok
    assert "the live audit chain was rewritten from entry #3" in drill.problem
    assert "the live audit chain was rewritten from entry #3" in mailoutbox[-1].body
