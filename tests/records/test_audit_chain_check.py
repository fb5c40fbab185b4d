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


def test_a_rewritten_entry_with_a_fresh_hash_breaks_the_next_link(entries) -> None:
    entries[1].reason = "forged"
    entries[1].entry_hash = entries[1].compute_hash()
    report = check(entries)
    assert report.broken_sequence == 3
    assert report.problem == "entry #3 does not carry the hash of entry #2"


def test_a_chain_that_does_not_start_from_genesis_is_refused(entries) -> None:
    entries[0].previous_hash = "f" * 64
    entries[0].entry_hash = entries[0].compute_hash()
    report = check(entries)
    assert report.broken_sequence == 1
    assert "does not carry the hash of entry #0" in report.problem


def test_a_cut_off_tail_is_caught_by_the_head(entries) -> None:
    report = check(entries[:4])
    assert (report.checked, report.broken_sequence) == (4, 5)
    assert report.problem == "the chain ends at entry #4 but its head records entry #5"


def test_a_head_that_does_not_match_the_last_entry_is_caught(entries) -> None:
    report = check(entries, head_hash="e" * 64)
    assert not report.intact
    assert report.broken_sequence == 6
