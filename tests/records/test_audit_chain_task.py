"""The daily chain check: it verifies the chain against the anchors in the backup site,
records the result, and mails staff every day with the chain head (the mails are an
anchor outside the system); a break is mailed naming the first bad entry."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from records.models import AuditChainHead, AuditEntry
from records.services.audit import audit_anchor_write, audit_record
from records.tasks import audit_chain_verify_task as audit_chain_verify
from vault.site_clients import site_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _staff(settings) -> None:
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]


def lift_append_only_guard() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE records_auditentry DISABLE TRIGGER ALL")
        else:
            cursor.execute("DROP TRIGGER records_auditentry_append_only")


def test_the_task_records_a_verified_chain_and_mails_the_head(mailoutbox) -> None:
    for step in range(3):
        audit_record(action="test.step", details={"step": step})
    head = AuditChainHead.objects.get(id=1)

    result = audit_chain_verify()

    assert result == {"intact": True, "checked": 3, "problem": ""}
    newest = AuditEntry.objects.order_by("-sequence").first()
    assert newest is not None
    assert (newest.action, newest.details) == ("audit.chain_verified", {"entries": 3})
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["staff@acme.example"]
    assert mailoutbox[0].subject.endswith("Audit chain intact")
    assert f"Audit chain head: entry #3, SHA-256 {head.entry_hash}" in mailoutbox[0].body


def test_the_task_alerts_staff_when_the_chain_is_broken(mailoutbox) -> None:
    for step in range(3):
        audit_record(action="test.step", details={"step": step})
    lift_append_only_guard()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE records_auditentry SET reason = 'forged' WHERE sequence = 2")
    result = audit_chain_verify()
    assert result["intact"] is False
    assert "#2" in str(result["problem"])
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["staff@acme.example"]
    assert mailoutbox[0].subject.endswith("Audit chain broken at entry #2")
    assert "entry #2 was altered" in mailoutbox[0].body
    assert not AuditEntry.objects.filter(action="audit.chain_verified").exists()


def test_the_task_catches_a_consistently_rewritten_tail_from_its_anchor(mailoutbox) -> None:
    for step in range(6):
        audit_record(action="test.step", details={"step": step})
    audit_anchor_write(
        site=site_for(django_settings.ESCROW_BACKUP_SITE),
        source="backup test",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    lift_append_only_guard()
    # Rewrite entries #4 to #6, every hash recomputed and the head moved along.
    previous = AuditEntry.objects.get(sequence=3).entry_hash
    for entry in AuditEntry.objects.filter(sequence__gte=4).order_by("sequence"):
        entry.reason = "forged" if entry.sequence == 4 else entry.reason
        entry.previous_hash = previous
        entry.entry_hash = entry.compute_hash()
        entry.save(update_fields=["reason", "previous_hash", "entry_hash"])
        previous = entry.entry_hash
    AuditChainHead.objects.filter(id=1).update(entry_hash=previous)

    result = audit_chain_verify()

    assert result["intact"] is False
    assert str(result["problem"]).startswith("the chain was rewritten from entry #4")
    assert mailoutbox[0].subject.endswith("Audit chain broken at entry #4")
    assert "Compared with 1 anchors in the backup site." in mailoutbox[0].body


def test_an_unreadable_anchor_is_a_warning_in_the_mail_not_a_silent_skip(
    mailoutbox, settings
) -> None:
    audit_record(action="test.step")
    folder = settings.ESCROW_BACKUP_SITE["path"]
    bad = Path(folder) / "audit-anchors/2026/01/01/anchor-000000000001-x.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")

    result = audit_chain_verify()

    assert result["intact"] is True
    assert mailoutbox[0].subject.endswith("Audit chain intact (with warnings)")
    assert re.search(
        r"Warning: not compared with the anchors in backup: .*anchor-0+1-x\.json",
        mailoutbox[0].body,
    )
