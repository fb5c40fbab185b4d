from __future__ import annotations

from typing import ClassVar

from django.db import models


class Backup(models.Model):
    """One encrypted backup of the database and the inventory of stored objects,
    kept in the backup site (never a vault site)."""

    class State(models.TextChoices):
        OK = "ok", "Verified"
        FAILED = "failed", "Failed"

    created_at = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=10, choices=State.choices)
    site = models.CharField(max_length=40, blank=True)
    key = models.CharField(max_length=512, blank=True)
    version_id = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    database = models.CharField(max_length=20, blank=True, help_text="sqlite or postgresql")
    problem = models.TextField(blank=True)
    kept_by = models.JSONField(default=list, blank=True, help_text="Retention rules keeping it.")
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Backup #{self.pk} of {self.created_at:%Y-%m-%d %H:%M} ({self.state})"


class BackupDrill(models.Model):
    """A restore of a backup into a scratch database, compared with what was backed up."""

    backup = models.ForeignKey(Backup, on_delete=models.PROTECT, related_name="drills")
    created_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    report = models.JSONField(default=dict)
    problem = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return f"Drill of {self.backup}: {'ok' if self.ok else 'FAILED'}"
