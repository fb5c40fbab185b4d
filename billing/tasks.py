"""Billing's Celery tasks. Each is named for the service it calls, takes ids,
re-fetches, and retries only the transient errors it names (see records.queue)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing.documents import invoice_document_render
from billing.models import Invoice
from billing.services import (
    subscriptions_end_cancelled,
    subscriptions_lapse_overdue,
    subscriptions_renew_due,
)
from records.queue import EscrowTask
from vault.sites import SiteUnavailable


@shared_task(
    base=EscrowTask,
    name="billing.invoice_document_render",
    autoretry_for=(SiteUnavailable,),
)
def invoice_document_render_task(invoice_id: int) -> None:
    """Render and store an invoice's PDF."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is not None:
        invoice_document_render(invoice=invoice)


@shared_task(base=EscrowTask, name="billing.subscriptions_renew_due")
def subscriptions_renew_due_task() -> int:
    """Issue the renewal invoices that are due (once each, however often it runs)."""
    return len(subscriptions_renew_due(today=timezone.localdate()))


@shared_task(base=EscrowTask, name="billing.subscriptions_lapse_overdue")
def subscriptions_lapse_overdue_task() -> int:
    """Lapse subscriptions unpaid past their grace period."""
    return len(subscriptions_lapse_overdue(today=timezone.localdate()))


@shared_task(base=EscrowTask, name="billing.subscriptions_end_cancelled")
def subscriptions_end_cancelled_task() -> int:
    """End cancelled subscriptions whose paid period is over."""
    return len(subscriptions_end_cancelled(today=timezone.localdate()))
