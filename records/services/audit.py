"""The append-only, hash-chained audit log, its check, and its anchors outside the
database: each backup keeps the chain head (and the hashes since the last anchor)
in the backup site, so a chain rewritten consistently inside the database is caught
and the first rewritten entry named."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from records.models import AuditChainHead, AuditEntry
from records.models.audit import GENESIS_HASH
from vault.sites import SiteError, StorageSiteClient

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
class ChainAnchor:
    """The chain as it stood at one moment, kept outside the database (in the backup
    site, beside each backup): its head, and the hash of every entry since the anchor
    before it (``first_sequence`` .. ``sequence``), so that a chain rewritten later,
    however consistently, is caught and the first rewritten entry named."""

    sequence: int
    entry_hash: str
    source: str
    first_sequence: int = 1
    hashes: tuple[str, ...] = ()

    def expected(self, sequence: int) -> str | None:
        """The hash entry #``sequence`` had when the anchor was made, if it records it."""
        if sequence == self.sequence:
            return self.entry_hash
        index = sequence - self.first_sequence
        return self.hashes[index] if 0 <= index < len(self.hashes) else None


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_sequence: int | None = None
    problem: str = ""
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH
    anchors: int = 0
    #: What could not be checked (say, the backup site was unreachable): not a break,
    #: but staff are told, since an unchecked anchor protects nothing.
    warnings: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return self.broken_sequence is None

    def head_line(self) -> str:
        """The chain head as staff keep it outside the system (the daily mail)."""
        return f"Audit chain head: entry #{self.head_sequence}, SHA-256 {self.head_hash}"


class AnchorError(Exception):
    """An anchor that cannot be read or written; the message names it."""


def audit_chain_verify(*, anchors: Iterable[ChainAnchor] | None = None) -> ChainReport:
    """Walk the chain from the first entry and report the first entry that breaks it:
    its content, its link, the head, or the hash an anchor kept outside the database
    recorded for it. A tail rewritten consistently, every hash recomputed, passes the
    walk; only an anchor catches it.

    ``anchors`` defaults to every anchor in the backup site (each backup leaves one);
    one that cannot be read is a warning in the report, never a silent skip. Pass
    ``anchors=()`` to check the chain on its own."""
    warnings: tuple[str, ...] = ()
    if anchors is None:
        from vault.site_clients import site_for

        site = site_for(settings.ESCROW_BACKUP_SITE)
        try:
            anchors = audit_anchors_read(site=site)
        except (SiteError, AnchorError) as error:
            anchors = ()
            warnings = (f"not compared with the anchors in {site.name}: {error}",)
    anchors = list(anchors)
    entries = AuditEntry.objects.order_by("sequence").iterator(chunk_size=2000)
    head = AuditChainHead.objects.get(id=1)
    report = audit_chain_check(entries, head_sequence=head.sequence, head_hash=head.entry_hash)
    rewritten = _compare_with_anchors(anchors) if anchors else None
    if rewritten is not None and (report.intact or rewritten[0] < (report.broken_sequence or 0)):
        report = replace(
            report,
            checked=min(report.checked, rewritten[0] - 1),
            broken_sequence=rewritten[0],
            problem=rewritten[1],
        )
    return replace(report, anchors=len(anchors), warnings=warnings)


def audit_chain_check(
    entries: Iterable[AuditEntry], *, head_sequence: int, head_hash: str
) -> ChainReport:
    """Check entries (in sequence order) and the head against each other; shared by
    the live check and the restore drill, which reads a restored database directly.

    Every entry's hash is recomputed from its content, and every link checked; the
    report names the *first* entry that is wrong. When an entry's hash matches its
    content but the next entry recorded another hash for it, the entry itself was
    altered and its hash recomputed (or, less likely, the next one's link was
    rewritten): the earlier of the two is named, not the innocent next entry."""
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0

    def broken(sequence: int, problem: str) -> ChainReport:
        return ChainReport(
            checked=min(checked, sequence - 1),
            broken_sequence=sequence,
            problem=problem,
            head_sequence=head_sequence,
            head_hash=head_hash,
        )

    for entry in entries:
        if entry.sequence != expected_sequence:
            return broken(expected_sequence, f"entry #{expected_sequence} is missing")
        if entry.compute_hash() != entry.entry_hash:
            return broken(
                entry.sequence, f"entry #{entry.sequence} was altered after it was written"
            )
        if entry.previous_hash != expected_previous:
            if entry.sequence == 1:
                return broken(1, "entry #1 does not start from the genesis hash")
            return broken(
                entry.sequence - 1,
                f"entry #{entry.sequence - 1} was altered and its hash recomputed (or the "
                f"link of entry #{entry.sequence} to it was): entry #{entry.sequence} "
                "recorded another hash for it",
            )
        expected_previous = entry.entry_hash
        expected_sequence += 1
        checked += 1
    if head_sequence > checked:
        return broken(
            checked + 1,
            f"the chain ends at entry #{checked} but its head records entry #{head_sequence}: "
            f"entries #{checked + 1} to #{head_sequence} are missing",
        )
    if head_sequence < checked:
        return broken(
            head_sequence + 1,
            f"the chain goes on to entry #{checked} but its head records entry "
            f"#{head_sequence}: entries after #{head_sequence} were added around the head",
        )
    if head_hash != expected_previous:
        return broken(
            checked,
            f"entry #{checked} was altered and its hash recomputed (or the chain head "
            "was): the chain head recorded another hash for it",
        )
    return ChainReport(checked, head_sequence=head_sequence, head_hash=head_hash)


def _live_hashes(first: int, last: int) -> dict[int, str]:
    return dict(
        AuditEntry.objects.filter(sequence__gte=first, sequence__lte=last).values_list(
            "sequence", "entry_hash"
        )
    )


def _compare_with_anchors(anchors: list[ChainAnchor]) -> tuple[int, str] | None:
    """The first entry whose hash differs from what an anchor recorded, and why.

    An anchor whose head still matches vouches for every entry before it (each
    hash covers the one before), so only the stretch after the newest matching
    head, up to the oldest head that no longer matches, is compared entry by entry."""
    # An anchor of the empty chain (a backup made before anything happened) vouches
    # for nothing and has no entry to compare with.
    anchors = [anchor for anchor in anchors if anchor.sequence > 0]
    heads = _live_hashes_at({anchor.sequence for anchor in anchors})
    differing = sorted(
        (anchor for anchor in anchors if heads.get(anchor.sequence) != anchor.entry_hash),
        key=lambda anchor: anchor.sequence,
    )
    if not differing:
        return None
    oldest = differing[0]
    vouched = max(
        (a.sequence for a in anchors if a.sequence < oldest.sequence and a not in differing),
        default=0,
    )
    live = _live_hashes(vouched + 1, oldest.sequence)
    for sequence in range(vouched + 1, oldest.sequence + 1):
        witness = next((a for a in anchors if a.expected(sequence) is not None), None)
        if witness is None:
            continue
        recorded = witness.expected(sequence) or ""
        if live.get(sequence) != recorded:
            now = "is missing" if sequence not in live else f"now has {live[sequence][:12]}…"
            return sequence, (
                f"the chain was rewritten from entry #{sequence}: {witness.source} recorded "
                f"its hash as {recorded[:12]}…, the entry {now}"
            )
    # The anchors do not record every entry of the stretch: name where it can start.
    return vouched + 1, (
        f"the chain was rewritten from entry #{vouched + 1} at the earliest: entry "
        f"#{oldest.sequence} no longer has the hash {oldest.source} recorded "
        f"({oldest.entry_hash[:12]}…)"
    )


def _live_hashes_at(sequences: set[int]) -> dict[int, str]:
    return dict(
        AuditEntry.objects.filter(sequence__in=sequences).values_list("sequence", "entry_hash")
    )


# --- Anchors outside the database ---------------------------------------------------

ANCHOR_PREFIX = "audit-anchors/"
_ANCHOR_FORMAT = 1
_MAX_ANCHOR_BYTES = 64 * 1024 * 1024
_HASH = re.compile(r"[0-9a-f]{64}")


def audit_chain_head() -> tuple[int, str]:
    """The chain head now: (sequence, hash of that entry)."""
    head = AuditChainHead.objects.filter(id=1).values_list("sequence", "entry_hash").first()
    return head if head is not None else (0, GENESIS_HASH)


def audit_anchor_write(
    *,
    site: StorageSiteClient,
    source: str,
    now: datetime,
    head: tuple[int, str] | None = None,
) -> ChainAnchor:
    """Keep the chain head (``head``, by default the live one) in ``site``, with the
    hash of every entry since the newest anchor already there, as a small JSON object
    under ``audit-anchors/``. Anchors are never pruned: each vouches for its stretch.

    The backup writes one beside every backup, to the backup site (which keeps
    versions, and Object Lock where it has it), so rewriting the chain later would
    need write access to both the database and that site."""
    sequence, entry_hash = head if head is not None else audit_chain_head()
    if sequence < 0 or not _HASH.fullmatch(entry_hash):
        raise AnchorError(f"not a chain head: #{sequence} {entry_hash[:80]!r}")
    before = [anchor for anchor in audit_anchors_read(site=site) if anchor.sequence <= sequence]
    first = max((anchor.sequence for anchor in before), default=0) + 1
    live = _live_hashes(min(first, sequence), sequence)
    hashes = tuple(live.get(n, "") for n in range(first, sequence + 1))
    if sequence and (not all(hashes) or live.get(sequence) != entry_hash):
        raise AnchorError(
            f"the chain does not hold entries #{first} to #{sequence} ending in the head "
            "given: no anchor written"
        )
    anchor = ChainAnchor(
        sequence=sequence,
        entry_hash=entry_hash,
        source=source,
        first_sequence=first,
        hashes=hashes,
    )
    data = json.dumps(
        {
            "format": _ANCHOR_FORMAT,
            "sequence": sequence,
            "entry_hash": entry_hash,
            "source": source,
            "created_at": now.isoformat(),
            "first_sequence": first,
            "hashes": list(hashes),
        },
        indent=0,
    ).encode()
    key = f"{ANCHOR_PREFIX}{now:%Y/%m/%d}/anchor-{sequence:012d}-{now:%Y%m%dT%H%M%S%f}Z.json"
    try:
        site.put(key, io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    except SiteError as error:
        raise AnchorError(f"the anchor could not be written to {site.name}: {error}") from error
    return anchor


def audit_anchors_read(*, site: StorageSiteClient) -> list[ChainAnchor]:
    """Every anchor kept in ``site``, oldest first. Raises AnchorError naming an anchor
    that cannot be read or is not one (the check must not quietly skip it), and
    SiteError when the site cannot be read."""
    anchors = []
    for key in site.keys(ANCHOR_PREFIX):
        if not key.endswith(".json"):
            continue
        try:
            with site.open(key) as stream:
                raw = stream.read(_MAX_ANCHOR_BYTES + 1)
            if len(raw) > _MAX_ANCHOR_BYTES:
                raise ValueError(f"larger than {_MAX_ANCHOR_BYTES} bytes")
            anchors.append(_parse_anchor(json.loads(raw), source=key))
        except (ValueError, TypeError, KeyError) as error:
            raise AnchorError(f"the audit anchor {key} is not a valid anchor: {error}") from None
    return sorted(anchors, key=lambda anchor: anchor.sequence)


def _parse_anchor(data: Any, *, source: str) -> ChainAnchor:
    if not isinstance(data, dict) or data.get("format") != _ANCHOR_FORMAT:
        raise ValueError(f"not format {_ANCHOR_FORMAT}")
    sequence, first, hashes = data["sequence"], data["first_sequence"], data["hashes"]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (sequence, first)):
        raise ValueError("sequence and first_sequence must be whole numbers")
    if sequence < 0 or first < 1 or not isinstance(hashes, list):
        raise ValueError("sequence, first_sequence or hashes out of range")
    if len(hashes) != max(sequence - first + 1, 0):
        raise ValueError(f"{len(hashes)} hashes for entries #{first} to #{sequence}")
    entry_hash = data["entry_hash"]
    for value in (entry_hash, *hashes):
        if not isinstance(value, str) or not _HASH.fullmatch(value):
            raise ValueError(f"{str(value)[:80]!r} is not a SHA-256 hash")
    if hashes and hashes[-1] != entry_hash:
        raise ValueError("the last hash is not the head's")
    label = data.get("source")
    label = label[:200] if isinstance(label, str) and label else source
    return ChainAnchor(
        sequence=sequence,
        entry_hash=entry_hash,
        source=f"the anchor of {label} ({source})",
        first_sequence=first,
        hashes=tuple(hashes),
    )
