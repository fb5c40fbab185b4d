from __future__ import annotations

import pytest
from django.db import connection

from records.models import AuditEntry
from records.services.audit import audit_record
from records.tasks import audit_chain_verify_task as audit_chain_verify

pytestmark = pytest.mark.django_db


def test_the_task_records_a_verified_chain(mailoutbox) -> None:
    for step in range(3):
        audit_record(action="test.step", details={"step": step})
    result = audit_chain_verify()
    assert result == {"intact": True, "checked": 3, "problem": ""}
    newest = AuditEntry.objects.order_by("-sequence").first()
    assert newest is not None
    assert (newest.action, newest.details) == ("audit.chain_verified", {"entries": 3})
    assert mailoutbox == []


def test_the_task_alerts_staff_when_the_chain_is_broken(mailoutbox, settings) -> None:
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]
    for step in range(3):
        audit_record(action="test.step", details={"step": step})
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE records_auditentry DISABLE TRIGGER ALL")
        else:
            cursor.execute("DROP TRIGGER records_auditentry_append_only")
        cursor.execute("UPDATE records_auditentry SET reason = 'forged' WHERE sequence = 2")
    result = audit_chain_verify()
    assert result["intact"] is False
    assert "#2" in str(result["problem"])
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["staff@acme.example"]
    assert "entry #2 was altered" in mailoutbox[0].body
    assert not AuditEntry.objects.filter(action="audit.chain_verified").exists()
