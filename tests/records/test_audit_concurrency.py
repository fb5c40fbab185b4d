"""The chain stays one chain when many writers append at once (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from records.models import AuditEntry
from records.services.audit import audit_chain_verify, audit_record
from tests.conftest import skip_or_fail

WRITERS = 8
ENTRIES_EACH = 25


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("concurrent audit writers are tested against PostgreSQL (set DATABASE_URL)")
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            start.wait()
            for step in range(ENTRIES_EACH):
                audit_record(action="test.concurrent", details={"writer": number, "step": step})
        except BaseException as error:  # reported to the main thread below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    assert AuditEntry.objects.count() == WRITERS * ENTRIES_EACH
    sequences = list(AuditEntry.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, WRITERS * ENTRIES_EACH + 1))
    report = audit_chain_verify()
    assert report.intact, report.problem
    assert report.checked == WRITERS * ENTRIES_EACH
