"""Pruning backups: what the published retention no longer keeps is deleted from the backup
site and audited; the newest backup, vault objects, and everything after a failed
backup are never touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from config.storage_sites import default_sites
from escrow.backups.service import backup_prune, backup_run
from escrow.models import Backup
from records.models import AuditEntry
from vault.sites import SiteError

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _backup_site(settings, tmp_path):
    settings.ESCROW_BACKUP_SITE = default_sites(tmp_path / "offsite")[0] | {"name": "backup"}
    settings.ESCROW_BACKUP_IDENTITY_PATH = tmp_path / "var" / "backup_identity.txt"
    settings.ESCROW_BACKUP_RECIPIENTS = []
    settings.ADMINS = [("staff", "staff@acme.example")]
    # Keep everything while the backups are made; each test then sets its policy.
    keep(settings, daily=100)


def keep(settings, *, daily: int = 0, weekly: int = 0, monthly: int = 0, yearly: int = 0) -> None:
    settings.ESCROW_BACKUP_KEEP_DAILY = daily
    settings.ESCROW_BACKUP_KEEP_WEEKLY = weekly
    settings.ESCROW_BACKUP_KEEP_MONTHLY = monthly
    settings.ESCROW_BACKUP_KEEP_YEARLY = yearly


def stored_path(settings, backup: Backup) -> Path:
    return Path(settings.ESCROW_BACKUP_SITE["path"]) / backup.key


def daily_backups(days: int) -> list[Backup]:
    return [backup_run(now=START + timedelta(days=day)) for day in range(days)]


def test_backups_the_policy_no_longer_keeps_are_deleted_and_audited(settings) -> None:
    made = daily_backups(5)
    assert all(stored_path(settings, backup).exists() for backup in made)
    keep(settings, daily=2)

    pruned = backup_prune()

    assert sorted(backup.pk for backup in pruned) == [backup.pk for backup in made[:3]]
    for backup in made:
        backup.refresh_from_db()
    for backup in made[:3]:
        assert backup.pruned_at is not None and backup.kept_by == []
        assert not stored_path(settings, backup).exists()
        entry = AuditEntry.objects.get(action="backup.pruned", object_id=str(backup.pk))
        assert entry.details == {"key": backup.key}
    for backup in made[3:]:
        assert backup.pruned_at is None
        assert "daily" in backup.kept_by
        assert stored_path(settings, backup).exists()
    assert "newest" in made[-1].kept_by


def test_pruning_again_changes_nothing(settings) -> None:
    daily_backups(4)
    keep(settings, daily=1)
    assert len(backup_prune()) == 3
    audited = AuditEntry.objects.filter(action="backup.pruned").count()
    assert backup_prune() == []
    assert AuditEntry.objects.filter(action="backup.pruned").count() == audited == 3


def test_the_reasons_a_backup_is_kept_are_recorded(settings) -> None:
    made = daily_backups(3)
    keep(settings, daily=2, yearly=1)
    assert [b.pk for b in backup_prune()] == [made[0].pk]
    newest, second = (Backup.objects.get(pk=b.pk) for b in (made[2], made[1]))
    assert newest.kept_by == ["daily", "yearly", "newest"]
    assert second.kept_by == ["daily"]


def test_with_no_rule_at_all_nothing_is_pruned(settings) -> None:
    made = daily_backups(3)
    keep(settings)  # every rule 0: like restic, an empty policy keeps everything
    assert backup_prune() == []
    assert all(stored_path(settings, backup).exists() for backup in made)


def test_nothing_is_pruned_while_the_latest_backup_failed(settings) -> None:
    made = daily_backups(3)
    Backup.objects.create(created_at=timezone.now(), state=Backup.State.FAILED, problem="disk")
    keep(settings, daily=1)
    assert backup_prune() == []
    assert not Backup.objects.filter(pruned_at__isnull=False).exists()
    assert all(stored_path(settings, backup).exists() for backup in made)


def test_with_no_backups_there_is_nothing_to_prune() -> None:
    assert backup_prune() == []


def test_the_newest_backup_is_kept_even_when_its_clock_was_behind(settings) -> None:
    later = backup_run(now=datetime(2026, 5, 10, tzinfo=UTC))
    behind = backup_run(now=datetime(2026, 5, 1, tzinfo=UTC))  # made last, clock 9 days back
    keep(settings, daily=1)
    assert backup_prune() == []
    behind.refresh_from_db()
    later.refresh_from_db()
    assert behind.kept_by == ["newest"]
    assert later.kept_by == ["daily"]
    assert stored_path(settings, behind).exists()


def test_a_record_pointing_outside_the_backups_is_never_deleted(settings) -> None:
    daily_backups(1)
    outside = Path(settings.ESCROW_BACKUP_SITE["path"]) / "deposits" / "sealed.age"
    outside.parent.mkdir(parents=True)
    outside.write_bytes(b"age-encryption.org/v1 a vault object")
    Backup.objects.create(
        created_at=START - timedelta(days=30),
        state=Backup.State.OK,
        site="backup",
        key="deposits/sealed.age",
        sha256="0" * 64,
        size=1,
        database="sqlite",
    )
    backup_run(now=START + timedelta(days=1))  # newest, so pruning is allowed
    keep(settings, daily=1)
    with pytest.raises(SiteError, match="not a backup"):
        backup_prune()
    assert outside.read_bytes() == b"age-encryption.org/v1 a vault object"
