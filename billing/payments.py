"""Payments against invoices, and what settling an invoice sets in motion."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.invoicing import CENT
from billing.models import Invoice, Payment
from billing.models.subscriptions import SubscriptionState
from billing.services import subscription_activate, subscription_renew
from records.models import Notification
from records.services.audit import audit_record
from records.services.notifications import notification_queue


class PaymentRefused(Exception):
    """A payment that cannot be recorded: unknown invoice, wrong amount, already paid."""


#: Amounts are stored with 14 digits, 2 of them decimals (see billing.models.Invoice).
MAX_AMOUNT = Decimal("1000000000000")


def parse_amount(raw: str) -> Decimal:
    """A positive amount with at most two decimals, e.g. ``630.00``."""
    try:
        amount = Decimal(raw.strip())
    except (InvalidOperation, AttributeError):
        raise ValidationError(f"{raw!r} is not an amount; write it like 630.00.") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationError(f"{raw!r} is not a positive amount.")
    if amount >= MAX_AMOUNT:
        raise ValidationError(f"{raw!r} is larger than any invoice can be ({MAX_AMOUNT}).")
    if amount != amount.quantize(CENT):
        raise ValidationError(f"{raw!r} has more than two decimals.")
    return amount


def payment_record(
    *, invoice_number: str, amount: Decimal, received_on: date, actor: User | None
) -> Payment:
    """Record a payment of exactly what is due; a settled first or renewal invoice
    then activates or renews its subscription."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(number=invoice_number).first()
        if invoice is None:
            raise PaymentRefused(f"There is no invoice {invoice_number!r}.")
        if invoice.kind != Invoice.Kind.INVOICE:
            raise PaymentRefused(f"{invoice_number} is a credit note; it is not paid.")
        due = invoice.amount_due()
        if due <= 0:
            raise PaymentRefused(f"Invoice {invoice_number} is paid already.")
        if amount != due:
            raise PaymentRefused(
                f"Invoice {invoice_number} has {invoice.currency} {due} due, not {amount}; "
                "nothing was recorded."
            )
        if received_on > timezone.localdate():
            raise PaymentRefused(f"A payment cannot be received in the future ({received_on}).")
        payment = Payment.objects.create(
            invoice=invoice, amount=amount, received_on=received_on, recorded_by=actor
        )
        audit_record(
            action="payment.record",
            actor=actor,
            target=invoice,
            details={"amount": str(amount), "received_on": received_on.isoformat()},
        )
        notification_queue(
            organisation=invoice.customer,
            kind=Notification.Kind.PAYMENT_RECEIVED,
            subject=f"Payment received for invoice {invoice.number}",
            body=f"We received {invoice.currency} {amount} for invoice {invoice.number}. Thanks.",
        )
        _after_settlement(invoice, actor)
    return payment


def _after_settlement(invoice: Invoice, actor: User | None) -> None:
    subscription = invoice.subscription
    if subscription is None:
        return
    if (
        invoice.purpose == Invoice.Purpose.SUBSCRIPTION
        and subscription.state == SubscriptionState.AWAITING_PAYMENT
    ):
        subscription_activate(subscription=subscription, actor=actor)
        notification_queue(
            organisation=invoice.customer,
            kind=Notification.Kind.SUBSCRIPTION_ACTIVATED,
            subject=f"Escrow for {subscription.licence.product.name} is active",
            body=(
                f"Your licence of {subscription.licence.product.name} is now on the escrow list "
                f"until {subscription.period_end:%d %B %Y}."
            ),
        )
    elif (
        invoice.purpose == Invoice.Purpose.RENEWAL
        and subscription.state == SubscriptionState.ACTIVE
    ):
        subscription_renew(subscription=subscription, actor=actor)
