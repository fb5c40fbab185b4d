"""The append-only, hash-chained audit log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from records.models import AuditChainHead, AuditEntry
from records.models.audit import GENESIS_HASH

SYSTEM_ACTOR = "system"


def _actor_label_for(user: User | None) -> str:
    if user is None:
        return SYSTEM_ACTOR
    return f"{user.role}:{user.email}"


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    actor_label: str | None = None,
    target: models.Model | None = None,
    from_state: str = "",
    to_state: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the audit chain.

    Runs inside the caller's transaction when there is one, so the entry
    commits or rolls back together with the change it records. Locking the
    chain head serialises appenders until that transaction ends; audit writes
    are rare next to reads, so the queue stays short."""
    with transaction.atomic():
        # Migration 0002 seeds the head; get_or_create only matters after a
        # test flush. Were the head lost with entries left, the next sequence
        # number would collide and the append would fail loudly.
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        entry = AuditEntry(
            sequence=head.sequence + 1,
            created_at=timezone.now(),
            actor=actor,
            actor_label=actor_label or _actor_label_for(actor),
            action=action,
            object_type=target._meta.label if target is not None else "",
            object_id=str(target.pk) if target is not None else "",
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            details=details or {},
            previous_hash=head.entry_hash,
        )
        entry.entry_hash = entry.compute_hash()
        entry.save(force_insert=True)
        head.sequence = entry.sequence
        head.entry_hash = entry.entry_hash
        head.save(update_fields=["sequence", "entry_hash"])
    return entry


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_sequence: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_sequence is None


def audit_chain_verify() -> ChainReport:
    """Walk the chain from the first entry and report the first entry that breaks it."""
    entries = AuditEntry.objects.order_by("sequence").iterator(chunk_size=2000)
    head = AuditChainHead.objects.get(id=1)
    return audit_chain_check(entries, head_sequence=head.sequence, head_hash=head.entry_hash)


def audit_chain_check(
    entries: Iterable[AuditEntry], *, head_sequence: int, head_hash: str
) -> ChainReport:
    """Check entries (in sequence order) and the head against each other; shared by
    the live check and the restore drill, which reads a restored database directly."""
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for entry in entries:
        if entry.sequence != expected_sequence:
            return ChainReport(checked, expected_sequence, f"entry #{expected_sequence} is missing")
        if entry.previous_hash != expected_previous:
            return ChainReport(
                checked,
                entry.sequence,
                f"entry #{entry.sequence} does not carry the hash of entry #{entry.sequence - 1}",
            )
        if entry.compute_hash() != entry.entry_hash:
            return ChainReport(
                checked, entry.sequence, f"entry #{entry.sequence} was altered after it was written"
            )
        expected_previous = entry.entry_hash
        expected_sequence += 1
        checked += 1
    if head_sequence != checked or head_hash != expected_previous:
        return ChainReport(
            checked,
            checked + 1,
            f"the chain ends at entry #{checked} but its head records entry #{head_sequence}",
        )
    return ChainReport(checked)
