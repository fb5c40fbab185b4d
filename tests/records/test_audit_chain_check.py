"""The audit chain check on entries handed to it (as the restore drill hands it the rows of a
restored database): an intact chain passes, and each kind of break is named where it is."""

from __future__ import annotations

import copy

import pytest

from records.models import AuditChainHead, AuditEntry
from records.services.audit import audit_chain_check, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries() -> list[AuditEntry]:
    """Five real entries, read back from the database; copies, so tests may alter them."""
    for n in range(1, 6):
        audit_record(action="test.step", reason=f"step {n}")
    return [copy.copy(entry) for entry in AuditEntry.objects.order_by("sequence")]


def check(entries: list[AuditEntry], *, head_sequence: int | None = None, head_hash: str = ""):
    head = AuditChainHead.objects.get(id=1)
    return audit_chain_check(
        entries,
        head_sequence=head.sequence if head_sequence is None else head_sequence,
        head_hash=head_hash or head.entry_hash,
    )


def test_an_intact_chain_passes_and_counts_every_entry(entries) -> None:
    report = check(entries)
    assert report.intact
    assert (report.checked, report.broken_sequence, report.problem) == (5, None, "")


def test_an_empty_chain_with_an_empty_head_is_intact() -> None:
    report = audit_chain_check([], head_sequence=0, head_hash="0" * 64)
    assert report.intact and report.checked == 0


def test_an_altered_entry_is_named(entries) -> None:
    entries[2].reason = "nothing happened here"
    report = check(entries)
    assert not report.intact
    assert (report.checked, report.broken_sequence) == (2, 3)
    assert report.problem == "entry #3 was altered after it was written"


def test_a_missing_entry_is_named(entries) -> None:
    del entries[1]
    report = check(entries)
    assert (report.checked, report.broken_sequence) == (1, 2)
    assert report.problem == "entry #2 is missing"


def test_a_rewritten_entry_with_a_fresh_hash_is_named_not_the_next_one(entries) -> None:
    # Its own hash matches its new content; only entry #3 still records the old hash.
    # The first wrong entry is #2: the report must not blame the innocent #3.
    entries[1].reason = "forged"
    entries[1].entry_hash = entries[1].compute_hash()
    report = check(entries)
    assert (report.checked, report.broken_sequence) == (1, 2)
    assert report.problem.startswith("entry #2 was altered and its hash recomputed")
    assert "entry #3 recorded another hash for it" in report.problem


def test_a_rewritten_link_alone_is_caught_where_it_points(entries) -> None:
    entries[3].previous_hash = "a" * 64
    report = check(entries)
    assert (report.checked, report.broken_sequence) == (3, 4)
    assert report.problem == "entry #4 was altered after it was written"


def test_a_chain_that_does_not_start_from_genesis_is_refused(entries) -> None:
    entries[0].previous_hash = "f" * 64
    entries[0].entry_hash = entries[0].compute_hash()
    report = check(entries)
    assert (report.checked, report.broken_sequence) == (0, 1)
    assert report.problem == "entry #1 does not start from the genesis hash"


def test_a_cut_off_tail_is_caught_by_the_head(entries) -> None:
    report = check(entries[:3])
    assert (report.checked, report.broken_sequence) == (3, 4)
    assert report.problem == (
        "the chain ends at entry #3 but its head records entry #5: entries #4 to #5 are missing"
    )


def test_a_newest_entry_rewritten_with_a_fresh_hash_is_caught_by_the_head(entries) -> None:
    entries[4].reason = "forged"
    entries[4].entry_hash = entries[4].compute_hash()
    report = check(entries)
    assert (report.checked, report.broken_sequence) == (4, 5)
    assert report.problem.startswith("entry #5 was altered and its hash recomputed")


def test_a_head_that_does_not_match_the_last_entry_is_caught(entries) -> None:
    report = check(entries, head_hash="e" * 64)
    assert not report.intact
    assert report.broken_sequence == 5
    assert "the chain head recorded another hash for it" in report.problem


def test_entries_appended_around_the_head_are_caught(entries) -> None:
    head = AuditChainHead.objects.get(id=1)
    report = audit_chain_check(entries, head_sequence=3, head_hash=head.entry_hash)
    assert report.broken_sequence == 4
    assert "entries after #3 were added around the head" in report.problem
