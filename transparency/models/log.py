"""The log itself: its leaves (one per sealed deposit manifest, in sealing order), the
head row appenders lock, and the signed checkpoints of the tree."""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import RegexValidator
from django.db import models

hex_sha256 = RegexValidator(r"^[0-9a-f]{64}$", "A SHA-256 is 64 lower-case hex digits.")


class LogHead(models.Model):
    """A single row holding the log's size. Appenders lock it (SELECT ... FOR UPDATE on
    PostgreSQL) before they read the next index, so two sealings never take the same
    index (a fork) and none skips one (a gap); the unique index is the last guard."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    size = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"log head: {self.size} leaves"


class LogLeaf(models.Model):
    """One leaf of the RFC 6962 tree: the SHA-256 of a sealed deposit's manifest.

    Append-only: the services never update or delete a leaf, the admin is read-only
    and the database refuses UPDATE (and, on PostgreSQL, DELETE)."""

    index = models.PositiveBigIntegerField(unique=True, help_text="0-based, gap-free.")
    deposit_id = models.PositiveBigIntegerField(
        help_text="The escrow deposit (escrow sits above this app, so no foreign key)."
    )
    manifest_sha256 = models.CharField(max_length=64, validators=[hex_sha256])
    leaf_hash = models.CharField(
        max_length=64, validators=[hex_sha256], help_text="SHA-256(0x00 || manifest hash)."
    )
    appended_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["index"]
        constraints: ClassVar = [
            # A deposit sealed again after its sealed file was lost (a re-upload makes a
            # new manifest) gets a second leaf; the same manifest never gets two.
            models.UniqueConstraint(
                fields=["deposit_id", "manifest_sha256"], name="one_leaf_per_deposit_manifest"
            ),
        ]

    def __str__(self) -> str:
        return f"leaf #{self.index}: deposit {self.deposit_id}"


class Checkpoint(models.Model):
    """The signed state of the tree at one size: a C2SP signed note (tlog-checkpoint
    body, Ed25519 note signature by the system key) and an SSHSIG over the same body,
    so OpenSSH alone checks it too."""

    size = models.PositiveBigIntegerField(unique=True)
    root = models.CharField(max_length=64, validators=[hex_sha256])
    note = models.TextField(help_text="The C2SP signed note.")
    sshsig = models.TextField(help_text="SSHSIG of the note body, checkpoint namespace.")
    created_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["-size"]

    def __str__(self) -> str:
        return f"checkpoint at size {self.size}"

    @property
    def body(self) -> str:
        """The checkpoint body (origin, size, root): the bytes both signatures cover."""
        return self.note[: self.note.rfind("\n\n") + 1]
