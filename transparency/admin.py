"""The log in the staff admin: read-only, since the log is append-only (only the
services write it, and the database refuses changes)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from records.admin_helpers import ReadOnlyAdmin
from transparency.models import Checkpoint, LogLeaf, WitnessKey, WitnessSignature


@admin.register(LogLeaf)
class LogLeafAdmin(ReadOnlyAdmin):
    list_display = (
        "index",
        "deposit_id",
        "manifest_sha256",
        "appended_at",
    )
    search_fields = (
        "=deposit_id",
        "=manifest_sha256",
    )


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = (
        "size",
        "root",
        "created_at",
    )


@admin.register(WitnessKey)
class WitnessKeyAdmin(ReadOnlyAdmin):
    list_display = (
        "notary",
        "fingerprint",
        "added_at",
        "retired_at",
    )
    fields = ("notary", "fingerprint", "key_line", "added_at", "retired_at")
    readonly_fields = fields

    @admin.display(description="public key")
    def key_line(self, key: WitnessKey) -> str:
        """The ``ssh-ed25519`` line, breakable every 16 characters so it never widens
        a phone's page (its base64 has no natural break)."""
        text = key.public_key
        return format_html_join(
            mark_safe("<wbr>"), "{}", ((text[i : i + 16],) for i in range(0, len(text), 16))
        )


@admin.register(WitnessSignature)
class WitnessSignatureAdmin(ReadOnlyAdmin):
    list_display = (
        "notary",
        "signed_checkpoint",
        "signed_at",
    )
    list_select_related = (
        "notary",
        "signed_checkpoint",
    )
