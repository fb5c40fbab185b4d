"""A data export is a state machine like deposits and claims: building -> ready or
failed, moved only by the system through its services, each move audited."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from escrow.models import DataExport
from escrow.services.exports import export_build, export_fail, export_request
from records.models import AuditEntry
from records.services.transitions import apply_transition
from tests.state_machines import declared_table


def test_the_model_declares_exactly_the_export_lifecycle() -> None:
    assert declared_table(DataExport) == {
        "finish": {"building": "ready"},
        "fail": {"building": "failed"},
    }


def test_the_state_field_cannot_be_written_directly(subscriber) -> None:
    export = export_request(actor=subscriber)
    with pytest.raises(AttributeError):
        export.state = DataExport.State.READY


def test_building_an_export_finishes_it_with_an_audit_row(subscriber) -> None:
    export = export_request(actor=subscriber)  # the build is queued after commit, not run
    export_build(export=export)
    export.refresh_from_db()
    assert export.state == "ready"
    assert export.stored_file is not None
    entry = AuditEntry.objects.order_by("-sequence").filter(action="dataexport.finish").get()
    assert (entry.from_state, entry.to_state, entry.actor) == ("building", "ready", None)


def test_a_failure_ends_the_export_failed_with_the_reason_audited(subscriber) -> None:
    export = export_request(actor=subscriber)
    export_fail(export=export, problem="disk full")
    export.refresh_from_db()
    assert (export.state, export.problem) == ("failed", "disk full")
    assert export.finished_at is not None
    entry = AuditEntry.objects.order_by("-sequence").filter(action="dataexport.fail").get()
    assert (entry.from_state, entry.to_state, entry.reason) == ("building", "failed", "disk full")


def test_a_failure_reported_after_the_export_is_ready_changes_nothing(subscriber) -> None:
    export = export_request(actor=subscriber)
    export_build(export=export)
    audit_rows = AuditEntry.objects.count()
    export_fail(export=export, problem="late error")
    export.refresh_from_db()
    assert (export.state, export.problem) == ("ready", "")
    assert AuditEntry.objects.count() == audit_rows


def test_no_person_can_move_an_export(subscriber, staff) -> None:
    export = export_request(actor=subscriber)
    for person in (subscriber, staff):
        with pytest.raises(PermissionDenied):
            apply_transition(export, "fail", actor=person, problem="by hand")
    export.refresh_from_db()
    assert export.state == "building"
