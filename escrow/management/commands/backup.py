from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from escrow.backups.service import (
    BackupError,
    BackupFailed,
    backup_drill,
    backup_identities,
    backup_restore,
    backup_run,
)
from escrow.models import Backup


class Command(BaseCommand):
    help = "Back up the database and the object inventory; restore; drill."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("run", help="Make a backup now, verify it, apply retention.")
        actions.add_parser("list", help="List backups and why each is kept.")
        restore = actions.add_parser("restore", help="Restore a backup into an empty database.")
        restore.add_argument("backup_id", type=int)
        restore.add_argument(
            "--identity", type=Path, required=True, help="The age identity file that opens backups."
        )
        restore.add_argument(
            "--target",
            metavar="DATABASE_URL",
            help="The empty database to restore into (default: this one).",
        )
        drill = actions.add_parser(
            "drill", help="Restore the newest backup into a scratch database and compare it."
        )
        drill.add_argument("--identity", type=Path, help="default: the local backup identity")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except BackupError as error:
            raise CommandError(str(error)) from error

    def _run(self, options: dict[str, Any]) -> None:
        try:
            backup = backup_run()
        except BackupFailed as failed:
            raise CommandError(
                f"Backup failed (recorded as #{failed.backup.pk}): {failed}"
            ) from None
        if backup.state != Backup.State.OK:
            raise CommandError(f"Backup failed (recorded as #{backup.pk}): {backup.problem}")
        self.stdout.write(
            f"Backup #{backup.pk}: {backup.key} ({backup.size} bytes, sha256 {backup.sha256})"
        )

    def _list(self, options: dict[str, Any]) -> None:
        for backup in Backup.objects.order_by("created_at", "pk"):
            status = "pruned" if backup.pruned_at else backup.state
            why = ", ".join(backup.kept_by) or backup.problem
            self.stdout.write(
                f"#{backup.pk}  {backup.created_at:%Y-%m-%d %H:%M:%S}  {status:7} {why}"
            )

    def _restore(self, options: dict[str, Any]) -> None:
        backup = Backup.objects.filter(pk=options["backup_id"]).first()
        if backup is None:
            raise CommandError(f"There is no backup #{options['backup_id']}.")
        target: dict[str, Any] = dict(
            dj_database_url.parse(options["target"])
            if options["target"]
            else settings.DATABASES["default"]
        )
        meta = backup_restore(
            backup=backup, identities=backup_identities(options["identity"]), target=target
        )
        self.stdout.write(
            f"Restored backup #{backup.pk} ({meta['created_at']}) into "
            f"{target['NAME']}: {sum(meta['tables'].values())} rows."
        )

    def _drill(self, options: dict[str, Any]) -> None:
        drill = backup_drill(identity_file=options["identity"])
        if not drill.ok:
            raise CommandError(f"Drill of backup #{drill.backup_id} failed: {drill.problem}")
        self.stdout.write(f"Drill of backup #{drill.backup_id} passed: {drill.report}")
