from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from records.services.audit import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain, and compare it with the anchors the backups "
        "left in the backup site; exit non-zero naming the first broken entry."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verify()
        for warning in report.warnings:
            self.stderr.write(f"Warning: {warning}")
        if not report.intact:
            raise CommandError(
                f"Audit chain broken at entry #{report.broken_sequence}: {report.problem} "
                f"({report.checked} entries before it are intact)."
            )
        self.stdout.write(
            f"Audit chain intact: {report.checked} entries, compared with {report.anchors} "
            f"anchors.\n{report.head_line()}"
        )
