from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import ManagementUtility
from django.db import DatabaseError, connection, transaction

from records.models import AuditEntry
from records.services.audit import audit_chain_verify, audit_record

pytestmark = pytest.mark.django_db

GUARD = "records_auditentry_append_only"
SQLITE_GUARD = (
    f"CREATE TRIGGER {GUARD} BEFORE UPDATE ON records_auditentry "
    "BEGIN SELECT RAISE(ABORT, 'records_auditentry is append-only: UPDATE refused'); END"
)


@contextmanager
def append_only_guard_lifted() -> Iterator[None]:
    """What an attacker with the database owner's rights could do: lift the trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django's foreign keys are deferred; settle them so the table can be altered.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE records_auditentry DISABLE TRIGGER {GUARD}")
            yield
            cursor.execute(f"ALTER TABLE records_auditentry ENABLE TRIGGER {GUARD}")
        else:
            cursor.execute(f"DROP TRIGGER {GUARD}")
            yield
            cursor.execute(SQLITE_GUARD)


def run_audit_verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        ManagementUtility(["manage.py", "audit_verify"]).execute()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    else:
        code = 0
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def five_entries() -> list[AuditEntry]:
    return [audit_record(action="test.step", reason=f"step {n}") for n in range(1, 6)]


def test_entries_form_a_chain_of_hashes(five_entries) -> None:
    previous = "0" * 64
    for number, entry in enumerate(five_entries, start=1):
        assert entry.sequence == number
        assert entry.previous_hash == previous
        assert entry.entry_hash == entry.compute_hash()
        previous = entry.entry_hash


def test_audit_verify_passes_on_an_intact_chain(five_entries, capsys) -> None:
    code, output = run_audit_verify(capsys)
    assert code == 0
    assert "intact: 5 entries" in output


def test_audit_verify_names_an_altered_entry(five_entries, capsys) -> None:
    with append_only_guard_lifted():
        AuditEntry.objects.filter(sequence=3).update(reason="nothing happened here")
    code, output = run_audit_verify(capsys)
    assert code != 0
    assert "broken at entry #3" in output
    assert "altered" in output


def test_audit_verify_names_a_removed_entry(five_entries, capsys) -> None:
    with append_only_guard_lifted():
        AuditEntry.objects.filter(sequence=2).delete()
    code, output = run_audit_verify(capsys)
    assert code != 0
    assert "broken at entry #2" in output
    assert "missing" in output


def test_audit_verify_notices_the_newest_entry_was_cut_off(five_entries, capsys) -> None:
    with append_only_guard_lifted():
        AuditEntry.objects.filter(sequence=5).delete()
    code, output = run_audit_verify(capsys)
    assert code != 0
    assert "broken at entry #5" in output


def test_a_row_rewritten_with_a_fresh_hash_is_named_itself(five_entries, capsys) -> None:
    # Recomputing the altered row's own hash is not enough: the next row still
    # carries the old one. The altered row is named, not the next one.
    with append_only_guard_lifted():
        entry = AuditEntry.objects.get(sequence=2)
        entry.reason = "forged"
        entry.entry_hash = entry.compute_hash()
        entry.save(update_fields=["reason", "entry_hash"])
    report = audit_chain_verify()
    assert (report.checked, report.broken_sequence) == (1, 2)
    assert "entry #2 was altered and its hash recomputed" in report.problem
    code, output = run_audit_verify(capsys)
    assert code != 0
    assert "broken at entry #2" in output
    assert "(1 entries before it are intact)" in output


def test_the_database_refuses_to_update_an_entry(five_entries) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(sequence=1).update(reason="edited")
    assert AuditEntry.objects.get(sequence=1).reason == "step 1"


def test_postgresql_also_refuses_to_delete_an_entry(five_entries) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps DELETE open for Django's test flush; the chain still catches it")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(sequence=1).delete()
    assert AuditEntry.objects.count() == 5


def test_an_entry_rolls_back_with_the_change_it_records() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="test.doomed")
        raise RuntimeError("the change failed")
    assert not AuditEntry.objects.exists()
    assert audit_chain_verify().intact
