"""Billing's Celery tasks: thin wrappers that call a service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing.documents import invoice_document
from billing.models import Invoice
from billing.services import lapse_overdue, renewals_due


@shared_task(name="billing.tasks.invoice_document_task")
def invoice_document_task(invoice_id: int) -> None:
    """Render and store an invoice's PDF."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is not None:
        invoice_document(invoice=invoice)


@shared_task(name="billing.tasks.renewals_due_task")
def renewals_due_task() -> int:
    """Issue the renewal invoices that are due (once each, however often it runs)."""
    return len(renewals_due(today=timezone.localdate()))


@shared_task(name="billing.tasks.lapse_overdue_task")
def lapse_overdue_task() -> int:
    """Lapse subscriptions unpaid past their grace period."""
    return len(lapse_overdue(today=timezone.localdate()))
