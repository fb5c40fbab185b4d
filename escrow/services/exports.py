"""General data exports: everything a customer organisation owns, as one ZIP.

One export in every 12 calendar months is free, counted from the last free one
(a paid export does not restart the count; 29 February counts to 28 February);
any other costs ESCROW_EXPORT_FEE, shown first and invoiced once accepted.

Every export ends: ``ready``, or ``failed`` with the reason, whatever went wrong
(an expected storage error, an unexpected one, or a build that never came back,
which ``exports_fail_stuck`` ends after ESCROW_EXPORT_BUILD_TIMEOUT). A failed
export never costs anything: a failed free one does not count as the free one,
and a failed paid one's invoice is credited at once."""

from __future__ import annotations

import logging
import tempfile
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organisation, User
from billing.invoicing import Line, credit_note_issue, invoice_issue
from billing.models import Invoice
from billing.periods import add_years
from escrow.models import DataExport
from escrow.services.export_files import export_files_write
from records.links import public_url
from records.models import Notification, StoredFile
from records.queue import enqueue_on_commit
from records.services.audit import audit_record
from records.services.files import stored_file_put
from records.services.notifications import notification_queue
from records.services.transitions import apply_transition
from vault.sites import SiteUnavailable

logger = logging.getLogger(__name__)
#: How much of a failure's reason is kept on the export (an exception can be long).
PROBLEM_CHARS = 2000


class ExportFeeRequired(Exception):
    """A further export within 12 months has a fee the user must accept first."""

    def __init__(self, fee: Decimal, currency: str, free_from: date | None = None):
        message = f"A further export within 12 months costs {currency} {fee}."
        if free_from is not None:
            message += f" The next free export is possible from {free_from:%Y-%m-%d}."
        super().__init__(message)
        self.fee = fee
        self.currency = currency
        self.free_from = free_from


def export_free_from(organisation: Organisation) -> date | None:
    """The day from which the next export is free: 12 calendar months after the day
    of the last free export that did not fail (``add_years``: 29 February 2028 gives
    28 February 2029). ``None`` when the organisation never had a free one.

    Paid exports do not move it: a customer who paid for a second export in March
    still gets the next free one on the anniversary of the January one."""
    last_free = (
        organisation.data_exports.filter(fee=0)
        .exclude(state=DataExport.State.FAILED)
        .order_by("-created_at")
        .first()
    )
    if last_free is None:
        return None
    return add_years(timezone.localdate(last_free.created_at), 1)


def export_fee_for(organisation: Organisation) -> Decimal:
    """What the next export would cost today: nothing once 12 calendar months have
    passed since the last free one (or when there was none), else ESCROW_EXPORT_FEE."""
    free_from = export_free_from(organisation)
    if free_from is None or timezone.localdate() >= free_from:
        return Decimal("0.00")
    return settings.ESCROW_EXPORT_FEE


def export_request(*, actor: User, accept_fee: bool = False) -> DataExport:
    """Start an export of the actor's organisation, or return the one being built."""
    organisation = actor.organisation
    assert organisation is not None, "only customer users export their organisation's data"
    building = organisation.data_exports.filter(state=DataExport.State.BUILDING).first()
    if building is not None:
        return building
    fee = export_fee_for(organisation)
    currency = settings.ESCROW_EXPORT_FEE_CURRENCY
    if fee > 0 and not accept_fee:
        raise ExportFeeRequired(fee, currency, export_free_from(organisation))
    try:
        with transaction.atomic():
            export = DataExport.objects.create(
                organisation=organisation, requested_by=actor, fee=fee
            )
            if fee > 0:
                vendor = (
                    Organisation.objects.filter(kind=Organisation.Kind.VENDOR)
                    .order_by("pk")
                    .first()
                )
                assert vendor is not None, "the vendor organisation is missing"
                export.invoice = invoice_issue(
                    customer=organisation,
                    vendor=vendor,
                    purpose=Invoice.Purpose.DATA_EXPORT,
                    lines=[Line("General data export (a further one within 12 months)", fee)],
                    currency=currency,
                    actor=actor,
                )
                export.save(update_fields=["invoice"])
            audit_record(
                action="export.request", actor=actor, target=export, details={"fee": str(fee)}
            )
            enqueue_on_commit("escrow.export_build", export_id=export.pk)
    except IntegrityError:
        # A concurrent request started one first: that is the export in progress.
        return organisation.data_exports.get(state=DataExport.State.BUILDING)
    return export


def export_build(*, export: DataExport) -> DataExport:
    """Build the ZIP (escrow.services.export_files: a README, an index.html, CSV files
    that name things, deposit manifests and certificates, invoice PDFs, the claims
    with their history and evidence), store it, tell the customer.

    Whatever goes wrong ends the export ``failed`` with the reason (``export_fail``),
    so it never blocks the next one; only an unreachable vault site is raised
    instead, for the task to retry (its ``give_up`` fails the export after that)."""
    try:
        return _export_build(export=export)
    except SiteUnavailable:
        raise
    except Exception as error:
        logger.exception("data export %s failed", export.pk)
        export_fail(export=export, problem=f"{type(error).__name__}: {error}")
        export.refresh_from_db()
        return export


def _export_build(*, export: DataExport) -> DataExport:
    organisation = export.organisation
    settings.ESCROW_INTAKE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.ESCROW_INTAKE_DIR) as tmp:
        path = Path(tmp) / "export.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            export_files_write(archive, organisation=organisation)
        stored = stored_file_put(
            key=f"exports/{organisation.pk}/export-{export.pk}.zip",
            source=path,
            purpose=StoredFile.Purpose.EXPORT,
            content_type="application/zip",
            filename=f"data-export-{timezone.localdate():%Y-%m-%d}.zip",
        )
    with transaction.atomic():
        apply_transition(export, "finish", actor=None, stored_file=stored)
        notification_queue(
            organisation=organisation,
            kind=Notification.Kind.EXPORT_READY,
            subject="Your data export is ready",
            body="The export of all your organisation's data is ready in the customer portal: "
            f"{public_url(reverse('portal:exports'))}",
        )
    export.refresh_from_db()
    return export


def export_fail(*, export: DataExport, problem: str) -> None:
    """End an export that is still being built as ``failed`` with ``problem``; an
    export that already ended is left as it is.

    In the same transaction a paid export's invoice is credited (a credit note, so
    the customer never pays for an export it did not get; if it was paid already,
    staff then record the refund), and the customer and staff are told."""
    problem = (problem.strip() or "unknown error")[:PROBLEM_CHARS]
    with transaction.atomic():
        locked = (
            # Only the export's own row: PostgreSQL cannot lock the nullable invoice join.
            DataExport.objects.select_for_update(of=("self",))
            .select_related("organisation", "invoice")
            .get(pk=export.pk)
        )
        if locked.state != DataExport.State.BUILDING:
            export.refresh_from_db()
            return
        apply_transition(locked, "fail", actor=None, reason=problem, problem=problem)
        credit_note, credit_problem = _credit_failed_export(locked, problem=problem)
        _tell_of_failure(
            locked, problem=problem, credit_note=credit_note, credit_problem=credit_problem
        )
    export.refresh_from_db()


def _credit_failed_export(export: DataExport, *, problem: str) -> tuple[Invoice | None, str]:
    """Credit what is left of a failed paid export's invoice: the credit note, or
    ``None`` when there is nothing to credit (a free export, or staff credited it in
    full already). A credit the billing rules refuse does not keep the export from
    failing (it would block every later export): the refusal goes to staff."""
    invoice = export.invoice
    if invoice is None:
        return None, ""
    credited_net = -sum((note.net_amount for note in invoice.credit_notes.all()), Decimal("0"))
    if invoice.net_amount - credited_net <= 0:
        return None, ""
    try:
        with transaction.atomic():
            note = credit_note_issue(
                invoice=invoice, reason=f"export failed: {problem}", actor=None
            )
    except ValidationError as refused:
        logger.error(
            "could not credit invoice %s of failed export %s: %s", invoice, export.pk, refused
        )
        return (
            None,
            f"Crediting invoice {invoice.number} was refused ({refused}): credit it by hand.",
        )
    return note, ""


def _tell_of_failure(
    export: DataExport, *, problem: str, credit_note: Invoice | None, credit_problem: str
) -> None:
    organisation = export.organisation
    requested = timezone.localtime(export.created_at)
    charge = ""
    if credit_note is not None:
        assert export.invoice is not None
        charge = (
            f"Its invoice {export.invoice.number} is cancelled with credit note "
            f"{credit_note.number}: you pay nothing for it."
        )
        if export.invoice.refund_owed() > 0:
            charge += (
                f" You had paid it already; we refund {export.invoice.currency} "
                f"{export.invoice.refund_owed()}."
            )
    notification_queue(
        organisation=organisation,
        kind=Notification.Kind.EXPORT_FAILED,
        subject="Your data export could not be built",
        body=(
            f"The data export you requested on {requested:%Y-%m-%d %H:%M} {requested:%Z} "
            f"could not be built. {charge}\n\nOur staff have been told. You may request a "
            f"new export in the customer portal: {public_url(reverse('portal:exports'))}"
        ),
    )
    staff_lines = [
        f"Data export #{export.pk} of {organisation}, requested on "
        f"{requested:%Y-%m-%d %H:%M} {requested:%Z}, failed: {problem}"
    ]
    if credit_note is not None:
        assert export.invoice is not None
        staff_lines.append(
            f"Its invoice {export.invoice.number} was credited with {credit_note.number}."
        )
        if export.invoice.refund_owed() > 0:
            staff_lines.append(
                f"It had been paid: record the refund of {export.invoice.currency} "
                f"{export.invoice.refund_owed()} in the admin."
            )
    if credit_problem:
        staff_lines.append(credit_problem)
    notification_queue(
        audience=Notification.Audience.STAFF,
        kind=Notification.Kind.EXPORT_FAILED,
        subject=f"Data export #{export.pk} of {organisation} failed",
        body="\n".join(staff_lines),
    )


def exports_fail_stuck(*, now: datetime | None = None) -> int:
    """End every export still ``building`` ESCROW_EXPORT_BUILD_TIMEOUT after it was
    requested: its build was lost (a worker stopped, a hard time limit), and a
    building export would block every later one. Returns how many were ended."""
    now = now or timezone.now()
    timeout = timedelta(seconds=settings.ESCROW_EXPORT_BUILD_TIMEOUT)
    stuck = DataExport.objects.filter(
        state=DataExport.State.BUILDING, created_at__lt=now - timeout
    ).order_by("pk")
    ended = 0
    for export in stuck:
        export_fail(
            export=export,
            problem=f"still being built {timeout} after it was requested: the build was lost",
        )
        export.refresh_from_db()
        ended += export.state == DataExport.State.FAILED
    return ended
