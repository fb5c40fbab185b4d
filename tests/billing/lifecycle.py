"""Helpers for the billing lifecycle tests: the clock, subscribing, paying, and the
billing jobs of the real schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import time_machine
from celery import current_app
from django.conf import settings

from billing.models import Invoice, LicenceAgreement, Payment, Subscription
from billing.payments import payment_record
from billing.services import subscription_subscribe


def at(year: int, month: int, day: int, hour: int = 10) -> time_machine.travel:
    """Move the clock to that day (10:00 UTC unless told); it does not tick."""
    return time_machine.travel(datetime(year, month, day, hour, tzinfo=UTC), tick=False)


def subscribe(licence: LicenceAgreement, user) -> tuple[Subscription, Invoice]:
    subscription = subscription_subscribe(licence=licence, actor=user, accept_terms=True)
    return subscription, subscription.invoices.get()


def pay(invoice: Invoice, *, on: date, actor=None) -> Payment:
    """Pay exactly what is due, received on ``on``."""
    invoice.refresh_from_db()
    return payment_record(
        invoice_number=invoice.number, amount=invoice.amount_due(), received_on=on, actor=actor
    )


def run_billing_schedule() -> dict[str, object]:
    """Run every billing job of CELERY_BEAT_SCHEDULE through its Celery task, as beat (or
    `manage.py run_due`) would at this moment; returns each task's result."""
    results = {}
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        task = str(entry["task"])
        if task.startswith("billing."):
            results[task] = current_app.tasks[task].apply(throw=True).get()
    return results
