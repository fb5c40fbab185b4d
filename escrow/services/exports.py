"""General data exports: everything a customer organisation owns, as one ZIP.

The first export in any 12 months is free; a further one within 12 months
costs ESCROW_EXPORT_FEE, shown first and invoiced once accepted."""

from __future__ import annotations

import json
import tempfile
import zipfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import serializers
from django.db import IntegrityError, transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from accounts.models import Organisation, User
from billing.documents import invoice_document_render
from billing.invoicing import Line, invoice_issue
from billing.models import Invoice, InvoiceLine, LicenceAgreement, Payment, Subscription
from escrow.models import ClaimEvidence, DataExport, ReleaseClaim, ReleaseKey
from escrow.services.evidence import evidence_open
from records.models import AuditEntry, Notification, StoredFile
from records.queue import enqueue_on_commit
from records.services.audit import audit_record
from records.services.files import stored_file_open, stored_file_put
from records.services.notifications import notification_queue
from records.services.transitions import apply_transition


class ExportFeeRequired(Exception):
    """A further export within 12 months has a fee the user must accept first."""

    def __init__(self, fee: Decimal, currency: str):
        super().__init__(f"A further export within 12 months costs {currency} {fee}.")
        self.fee = fee
        self.currency = currency


def export_fee_for(organisation: Organisation) -> Decimal:
    """What the next export would cost: nothing if none was made in the last 12 months."""
    year_ago = timezone.now() - timedelta(days=365)
    recent = organisation.data_exports.filter(created_at__gte=year_ago).exclude(
        state=DataExport.State.FAILED
    )
    return settings.ESCROW_EXPORT_FEE if recent.exists() else Decimal("0.00")


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
        raise ExportFeeRequired(fee, currency)
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
                    lines=[Line("General data export (second within 12 months)", fee)],
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


def _records(organisation: Organisation) -> dict[str, QuerySet[Any]]:
    """Every record the organisation owns, by file name in the ZIP."""
    invoices = Invoice.objects.filter(customer=organisation)
    claims = ReleaseClaim.objects.filter(claimant=organisation)
    users = User.objects.filter(organisation=organisation)
    return {
        "organisation.json": Organisation.objects.filter(pk=organisation.pk),
        "users.json": users,
        "licences.json": LicenceAgreement.objects.filter(customer=organisation),
        "subscriptions.json": Subscription.objects.filter(licence__customer=organisation),
        "invoices.json": invoices,
        "invoice_lines.json": InvoiceLine.objects.filter(invoice__in=invoices),
        "payments.json": Payment.objects.filter(invoice__in=invoices),
        "release_claims.json": claims,
        "release_key.json": ReleaseKey.objects.filter(organisation=organisation),
        "notifications.json": Notification.objects.filter(organisation=organisation),
        "data_exports.json": DataExport.objects.filter(organisation=organisation),
        "claim_evidence.json": ClaimEvidence.objects.filter(claim__in=claims),
        "audit_log.json": AuditEntry.objects.filter(
            Q(actor__in=users)
            | Q(object_type=Organisation._meta.label, object_id=str(organisation.pk))
            | Q(
                object_type=Invoice._meta.label,
                object_id__in=[str(pk) for pk in invoices.values_list("pk", flat=True)],
            )
        ),
    }


# Secrets and internals that are not the customer's data.
_LEFT_OUT = {"users.json": ["password"]}


def _serialise(name: str, queryset: QuerySet[Model]) -> str:
    rows = json.loads(serializers.serialize("json", queryset.order_by("pk")))
    for row in rows:
        for field in _LEFT_OUT.get(name, []):
            row["fields"].pop(field, None)
    return json.dumps(rows, indent=2, sort_keys=True, ensure_ascii=False)


def export_build(*, export: DataExport) -> DataExport:
    """Build the ZIP (JSON of every record, invoice PDFs), store it, tell the customer."""
    organisation = export.organisation
    settings.ESCROW_INTAKE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.ESCROW_INTAKE_DIR) as tmp:
        path = Path(tmp) / "export.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, queryset in _records(organisation).items():
                archive.writestr(f"data/{name}", _serialise(name, queryset))
            for invoice in Invoice.objects.filter(customer=organisation).order_by("pk"):
                document = invoice_document_render(invoice=invoice)
                with stored_file_open(document) as stream:
                    archive.writestr(f"invoices/{document.filename}", stream.read())
            evidence = ClaimEvidence.objects.filter(
                claim__claimant=organisation, side=ClaimEvidence.Side.CLAIMANT
            ).order_by("pk")
            for item in evidence:
                archive.writestr(
                    f"documents/claim-{item.claim_id}/{item.pk}-{item.filename}",
                    evidence_open(item),
                )
            archive.writestr("README.txt", _readme(organisation))
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
            body="The export of all your organisation's data is ready in the customer portal.",
        )
    export.refresh_from_db()
    return export


def export_fail(*, export: DataExport, problem: str) -> None:
    export.refresh_from_db()
    if export.state == DataExport.State.BUILDING:
        apply_transition(export, "fail", actor=None, reason=problem, problem=problem)


def _readme(organisation: Organisation) -> str:
    return (
        f"Data export of {organisation.name}, made {timezone.now():%Y-%m-%d %H:%M} UTC.\n\n"
        "data/*.json  every record your organisation owns, one JSON file per kind of record\n"
        "invoices/    your invoices and credit notes as PDF\n"
        "documents/   the evidence you filed with release claims\n"
    )
