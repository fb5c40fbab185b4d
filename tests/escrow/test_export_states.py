"""A data export is a state machine like deposits and claims: building -> ready or
failed, moved only by the system through its services, each move audited. Every
failure, expected or not, ends it failed with the reason, so the next export is
never blocked, and a failed paid export costs nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from billing.invoicing import credit_note_issue
from billing.payments import payment_record
from escrow.models import ClaimEvidence, DataExport
from escrow.services.claims import claim_file
from escrow.services.evidence import Upload
from escrow.services.exports import (
    export_build,
    export_fail,
    export_request,
    exports_fail_stuck,
)
from escrow.tasks import export_build_task
from records.models import AuditEntry, Notification
from records.services.transitions import apply_transition
from tests.factories import make_acknowledged_deposit, make_active_subscription
from tests.s3server import closed_endpoint_url, s3_site_config
from tests.state_machines import declared_table
from vault.sites import SiteUnavailable


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


# -- Every failure ends the export (edge 10 of issue 11) ------------------------------------


@pytest.fixture
def claimed_evidence(subscriber, product, notary, notary_identity, staff) -> ClaimEvidence:
    """A claim with one evidence document, so an export has a document to read back."""
    make_active_subscription(
        licence=subscriber.organisation.licences.get(), actor=subscriber, staff=staff
    )
    make_acknowledged_deposit(product=product, notary=notary)
    claim = claim_file(
        product=product,
        filed_by=subscriber,
        condition="insolvency",
        statement="Declared bankrupt.",
        uploads=[Upload("ruling.pdf", b"%PDF-1.4\n% the ruling\n")],
    )
    return claim.evidence.get()


def damage_on_the_primary(key: str) -> None:
    """Overwrite the primary site's copy of ``key`` (a disk fault, not a code path)."""
    path = Path(settings.ESCROW_SITES[0]["path"]) / key
    path.chmod(0o600)
    path.write_bytes(b"not an age file at all")


def test_an_unexpected_error_ends_the_export_failed_and_the_next_one_can_start(
    subscriber, claimed_evidence, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    # The sealed evidence is damaged: decrypting it raises an error no code expects.
    damage_on_the_primary(claimed_evidence.key)
    with django_capture_on_commit_callbacks(execute=True):
        export = export_request(actor=subscriber)  # built in-process after the commit
    export.refresh_from_db()
    assert export.state == "failed"
    assert export.problem  # the reason, named
    assert export.finished_at is not None
    entry = AuditEntry.objects.order_by("-sequence").filter(action="dataexport.fail").get()
    assert entry.reason == export.problem

    # Not blocked: a new export starts (and, the failed one not counting, it is free).
    second = export_request(actor=subscriber)
    assert second.pk != export.pk
    assert (second.state, second.fee) == ("building", Decimal("0.00"))


def test_a_failure_tells_the_customer_and_staff(
    subscriber, staff, claimed_evidence, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    damage_on_the_primary(claimed_evidence.key)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        export = export_request(actor=subscriber)
    export.refresh_from_db()
    customer, to_staff = Notification.objects.filter(kind="export_failed").order_by("pk")
    assert customer.organisation == subscriber.organisation
    assert "could not be built" in customer.body
    assert "/portal/exports/" in customer.body
    assert export.problem not in customer.body  # internals stay with staff
    assert to_staff.audience == "staff"
    assert export.problem in to_staff.body
    mailed = {message.subject: message.to for message in mailoutbox}
    assert subscriber.email in mailed["[Software Escrow] Your data export could not be built"]
    assert mailed[
        f"[Software Escrow] Data export #{export.pk} of {export.organisation} failed"
    ] == [staff.email]


def test_an_unwritable_export_folder_ends_the_export_failed(
    subscriber, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the export folder should be")
    settings.ESCROW_INTAKE_DIR = blocked
    with django_capture_on_commit_callbacks(execute=True):
        export = export_request(actor=subscriber)
    export.refresh_from_db()
    assert export.state == "failed"
    assert "FileExistsError" in export.problem


def test_a_failed_paid_export_is_credited_so_nothing_is_due(
    subscriber, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    settings.ESCROW_EXPORT_FEE = Decimal("250.00")
    export_build(export=export_request(actor=subscriber))  # the free one
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.ESCROW_INTAKE_DIR = blocked
    with django_capture_on_commit_callbacks(execute=True):
        paid = export_request(actor=subscriber, accept_fee=True)
    paid.refresh_from_db()
    assert paid.state == "failed"
    invoice = paid.invoice
    assert invoice is not None and invoice.total > 0
    (note,) = invoice.credit_notes.all()
    assert note.total == -invoice.total
    assert "export failed: FileExistsError" in note.lines.get().description
    assert invoice.amount_due() == Decimal("0.00")
    assert invoice.refund_owed() == Decimal("0.00")
    customer = Notification.objects.filter(kind="export_failed", audience="organisation").get()
    assert f"credit note {note.number}: you pay nothing for it" in customer.body


def test_a_failed_export_that_was_paid_already_is_owed_back(subscriber, staff, settings) -> None:
    settings.ESCROW_EXPORT_FEE = Decimal("250.00")
    export_build(export=export_request(actor=subscriber))
    paid = export_request(actor=subscriber, accept_fee=True)  # its build waits for the commit
    assert paid.invoice is not None
    payment_record(
        invoice_number=paid.invoice.number,
        amount=paid.invoice.total,
        received_on=timezone.localdate(),
        actor=staff,
    )
    export_fail(export=paid, problem="worker lost")
    paid.invoice.refresh_from_db()
    assert paid.invoice.refund_owed() == paid.invoice.total
    to_staff = Notification.objects.filter(kind="export_failed", audience="staff").get()
    assert f"record the refund of EUR {paid.invoice.total}" in to_staff.body


def test_a_failure_after_staff_credited_the_invoice_issues_no_second_credit(
    subscriber, staff, settings
) -> None:
    settings.ESCROW_EXPORT_FEE = Decimal("250.00")
    export_build(export=export_request(actor=subscriber))
    paid = export_request(actor=subscriber, accept_fee=True)
    assert paid.invoice is not None
    credit_note_issue(invoice=paid.invoice, reason="goodwill", actor=staff)
    export_fail(export=paid, problem="worker lost")
    paid.refresh_from_db()
    assert paid.state == "failed"
    assert paid.invoice.credit_notes.count() == 1


def test_an_unreachable_site_is_retried_and_giving_up_ends_the_export_failed(
    subscriber, settings
) -> None:
    # Transient: the build raises it for the task to retry; once the task gives up
    # (in-process at once: there is no later retry), give_up ends the export with
    # the reason. Celery's own tracer runs it here, as a worker would.
    settings.ESCROW_SITES = [
        s3_site_config("primary", "escrow-primary", closed_endpoint_url()),
        *settings.ESCROW_SITES[1:],
    ]
    export = export_request(actor=subscriber)  # its queued build never runs: no commit
    with pytest.raises(SiteUnavailable):
        export_build(export=export)
    export.refresh_from_db()
    assert export.state == "building"  # left for the retry

    result = export_build_task.apply(kwargs={"export_id": export.pk}, throw=False)
    assert result.failed()
    export.refresh_from_db()
    assert export.state == "failed"
    assert export.problem.startswith("SiteUnavailable: storage site 'primary'")
    assert Notification.objects.filter(kind="export_failed", audience="staff").exists()


def test_an_export_whose_build_was_lost_is_ended_by_the_sweeper(subscriber, settings) -> None:
    settings.ESCROW_EXPORT_BUILD_TIMEOUT = 2 * 60 * 60
    start = datetime(2026, 5, 4, 9, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        lost = export_request(actor=subscriber)  # no worker ever builds it
    with time_machine.travel(start + timedelta(hours=1, minutes=59), tick=False):
        assert exports_fail_stuck() == 0
        # While it may yet finish, a request finds it rather than starting another.
        assert export_request(actor=subscriber).pk == lost.pk
    lost.refresh_from_db()
    assert lost.state == "building"
    with time_machine.travel(start + timedelta(hours=2, minutes=1), tick=False):
        assert exports_fail_stuck() == 1
        assert exports_fail_stuck() == 0
        lost.refresh_from_db()
        assert lost.state == "failed"
        assert "the build was lost" in lost.problem
        assert export_request(actor=subscriber).pk != lost.pk


def test_the_sweeper_runs_on_the_schedule(settings) -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "escrow.exports_fail_stuck" in scheduled
