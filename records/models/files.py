from __future__ import annotations

from typing import ClassVar

from django.db import models


class StoredFile(models.Model):
    """A document kept in the storage sites (invoice PDFs, data exports): written
    to the primary, copied to every replica, never deleted."""

    class Purpose(models.TextChoices):
        INVOICE = "invoice", "Invoice PDF"
        EXPORT = "export", "Data export"
        EVIDENCE = "evidence", "Claim evidence (sealed)"
        RELEASE = "release", "Release header or letter"
        CERTIFICATE = "certificate", "Deposit certificate"

    key = models.CharField(max_length=512, unique=True)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    content_type = models.CharField(max_length=100)
    filename = models.CharField(max_length=200, help_text="The name a download is saved under.")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return self.key
