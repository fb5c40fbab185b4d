"""Anchors of the audit chain outside the database: each backup leaves the chain head
(and the hash of every entry since the last anchor) in the backup site. A tail
rewritten consistently inside the database, every hash recomputed, passes the walk
of the chain; the anchors catch it and name the first rewritten entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection

from records.models import AuditChainHead, AuditEntry
from records.services.audit import (
    ANCHOR_PREFIX,
    AnchorError,
    audit_anchor_write,
    audit_anchors_read,
    audit_chain_head,
    audit_chain_verify,
    audit_record,
)
from vault.site_clients import site_for
from vault.sites import StorageSiteClient

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def site() -> StorageSiteClient:
    return site_for(django_settings.ESCROW_BACKUP_SITE)


def append(count: int) -> None:
    for _ in range(count):
        audit_record(action="test.step", details={"n": AuditEntry.objects.count() + 1})


def anchor(site: StorageSiteClient, minutes: int = 0) -> None:
    audit_anchor_write(site=site, source="backup test", now=NOW + timedelta(minutes=minutes))


def lift_append_only_guard() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE records_auditentry DISABLE TRIGGER ALL")
        else:
            cursor.execute("DROP TRIGGER records_auditentry_append_only")


def rewrite_from(sequence: int, *, reason: str = "forged") -> None:
    """What someone with the database's rights does to hide a change: alter entry
    #``sequence`` and recompute every hash after it, and the head, consistently."""
    lift_append_only_guard()
    previous = (
        AuditEntry.objects.get(sequence=sequence - 1).entry_hash if sequence > 1 else "0" * 64
    )
    for entry in AuditEntry.objects.filter(sequence__gte=sequence).order_by("sequence"):
        if entry.sequence == sequence:
            entry.reason = reason
        entry.previous_hash = previous
        entry.entry_hash = entry.compute_hash()
        entry.save(update_fields=["reason", "previous_hash", "entry_hash"])
        previous = entry.entry_hash
    AuditChainHead.objects.filter(id=1).update(entry_hash=previous)


def test_an_untouched_chain_matches_its_anchors(site) -> None:
    append(4)
    anchor(site)
    append(3)
    anchor(site, minutes=1)
    append(2)

    report = audit_chain_verify(anchors=audit_anchors_read(site=site))

    assert report.intact, report.problem
    assert (report.checked, report.anchors) == (9, 2)
    assert audit_chain_verify() == report  # by default, the anchors in the backup site


def test_the_head_an_anchor_keeps_is_the_newest_entry(site) -> None:
    AuditChainHead.objects.filter(id=1).delete()  # as after a test flush: nothing yet
    assert audit_chain_head() == (0, "0" * 64)
    append(3)
    newest = AuditEntry.objects.get(sequence=3)

    assert audit_chain_head() == (3, newest.entry_hash)
    anchor(site)
    (kept,) = audit_anchors_read(site=site)
    assert (kept.sequence, kept.entry_hash) == (3, newest.entry_hash)


def test_an_anchor_of_the_empty_chain_vouches_for_nothing_and_breaks_nothing(site) -> None:
    anchor(site)  # a first backup, before anything happened
    append(3)
    anchor(site, minutes=1)

    empty, first = audit_anchors_read(site=site)

    assert (empty.sequence, empty.hashes) == (0, ())
    assert (first.first_sequence, first.sequence) == (1, 3)
    assert audit_chain_verify().intact
    rewrite_from(2)
    assert audit_chain_verify().broken_sequence == 2


def test_each_anchor_keeps_the_hashes_since_the_one_before(site) -> None:
    append(4)
    anchor(site)
    append(3)
    anchor(site, minutes=1)

    first, second = audit_anchors_read(site=site)

    hashes = dict(AuditEntry.objects.values_list("sequence", "entry_hash"))
    assert (first.first_sequence, first.sequence) == (1, 4)
    assert first.hashes == tuple(hashes[n] for n in range(1, 5))
    assert (second.first_sequence, second.sequence) == (5, 7)
    assert second.hashes == tuple(hashes[n] for n in range(5, 8))
    assert second.entry_hash == hashes[7]
    assert len(list(site.keys(ANCHOR_PREFIX))) == 2


def test_a_consistently_rewritten_tail_passes_the_walk_but_not_the_anchor(site) -> None:
    append(8)
    anchor(site)
    rewrite_from(5)

    assert audit_chain_verify(anchors=()).intact  # every hash recomputed: the walk cannot tell
    report = audit_chain_verify()

    assert not report.intact
    assert (report.broken_sequence, report.checked) == (5, 4)
    assert report.problem.startswith("the chain was rewritten from entry #5: the anchor of ")


@pytest.mark.parametrize("rewritten", [2, 5, 6, 9])
def test_the_first_rewritten_entry_is_named_across_several_anchors(site, rewritten) -> None:
    append(4)
    anchor(site)  # #1-#4
    append(3)
    anchor(site, minutes=1)  # #5-#7
    append(3)
    anchor(site, minutes=2)  # #8-#10
    append(2)  # #11-#12, after the newest anchor
    rewrite_from(rewritten)

    report = audit_chain_verify()

    assert report.broken_sequence == rewritten
    assert f"rewritten from entry #{rewritten}:" in report.problem


def test_a_rewrite_after_the_newest_anchor_is_beyond_what_anchors_can_see(site) -> None:
    append(4)
    anchor(site)
    append(2)
    rewrite_from(6)

    # Only a later anchor (the next backup) or staff's mailed head can vouch for #5-#6.
    assert audit_chain_verify().intact


def test_a_cut_off_tail_with_the_head_moved_back_is_caught(site) -> None:
    append(6)
    anchor(site)
    lift_append_only_guard()
    AuditEntry.objects.filter(sequence__gte=5).delete()
    AuditChainHead.objects.filter(id=1).update(
        sequence=4, entry_hash=AuditEntry.objects.get(sequence=4).entry_hash
    )

    assert audit_chain_verify(anchors=()).intact
    report = audit_chain_verify()

    assert report.broken_sequence == 5
    assert "rewritten from entry #5" in report.problem
    assert "the entry is missing" in report.problem


def test_a_chain_rewritten_from_its_first_entry_is_named_from_entry_1(site) -> None:
    append(3)
    anchor(site)
    rewrite_from(1)

    report = audit_chain_verify()

    assert report.broken_sequence == 1


def test_an_inner_break_before_the_anchored_rewrite_is_named_first(site) -> None:
    append(6)
    anchor(site)
    rewrite_from(5)
    with connection.cursor() as cursor:  # and alter #2 without rehashing it
        cursor.execute("UPDATE records_auditentry SET reason = 'x' WHERE sequence = 2")

    report = audit_chain_verify()

    assert report.broken_sequence == 2
    assert report.problem == "entry #2 was altered after it was written"


def test_an_anchor_for_a_head_the_chain_does_not_hold_is_refused(site) -> None:
    append(3)

    with pytest.raises(AnchorError, match="does not hold entries #1 to #3"):
        audit_anchor_write(site=site, source="backup test", now=NOW, head=(3, "a" * 64))
    with pytest.raises(AnchorError, match="not a chain head"):
        audit_anchor_write(site=site, source="backup test", now=NOW, head=(3, "not a hash"))
    with pytest.raises(AnchorError, match="does not hold entries"):
        audit_anchor_write(site=site, source="backup test", now=NOW, head=(9, "a" * 64))
    assert list(site.keys(ANCHOR_PREFIX)) == []


def _valid(site: StorageSiteClient) -> dict[str, Any]:
    append(2)
    anchor(site)
    (key,) = site.keys(ANCHOR_PREFIX)
    with site.open(key) as stream:
        return dict(json.loads(stream.read()))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"format": 2}, "not format 1"),
        ({"sequence": True}, "must be whole numbers"),
        ({"sequence": "2"}, "must be whole numbers"),
        ({"first_sequence": 0}, "out of range"),
        ({"hashes": "abc"}, "out of range"),
        ({"hashes": ["a" * 64]}, "1 hashes for entries #1 to #2"),
        ({"entry_hash": "A" * 64}, "is not a SHA-256 hash"),
        ({"hashes": ["a" * 64, "b" * 63]}, "is not a SHA-256 hash"),
        ({"hashes": ["a" * 64, "b" * 64], "entry_hash": "c" * 64}, "the last hash is not"),
        ({"sequence": None}, "must be whole numbers"),
    ],
)
def test_a_malformed_anchor_is_refused_by_name(site, settings, change, named) -> None:
    data = _valid(site) | change
    path = Path(settings.ESCROW_BACKUP_SITE["path"]) / ANCHOR_PREFIX / "2026/anchor-forged.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))

    with pytest.raises(AnchorError, match=r"audit-anchors/2026/anchor-forged\.json") as refused:
        audit_anchors_read(site=site)
    assert named in str(refused.value)
    report = audit_chain_verify()
    assert report.intact
    assert report.warnings and "anchor-forged.json" in report.warnings[0]


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"[]", b"null", b'{"format": 1}'])
def test_an_anchor_that_is_not_json_of_an_anchor_is_refused(site, settings, content) -> None:
    path = Path(settings.ESCROW_BACKUP_SITE["path"]) / ANCHOR_PREFIX / "anchor-junk.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    with pytest.raises(AnchorError, match=r"anchor-junk\.json is not a valid anchor"):
        audit_anchors_read(site=site)
