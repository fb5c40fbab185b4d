"""Issuing invoices and credit notes, recording payments, and what payments set off."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Invoice, InvoiceCounter, InvoiceLine, Payment, Subscription
from billing.models.subscriptions import SubscriptionState
from billing.vat import invoice_amounts, vat_for
from escrow.models import Notification, Organisation, User
from escrow.services.audit import audit_record
from escrow.services.notifications import notify

CENT = Decimal("0.01")


class PaymentRefused(Exception):
    """A payment that cannot be recorded: unknown invoice, wrong amount, already paid."""


@dataclass(frozen=True)
class Line:
    description: str
    amount: Decimal


def _organisation_details(organisation: Organisation) -> dict[str, str]:
    return {
        "name": organisation.name,
        "address": organisation.address,
        "country": organisation.country,
        "vat_number": organisation.vat_number,
        "email": organisation.contact_email,
    }


def _next_number(year: int) -> int:
    """Take the next number of ``year``. The counter row is locked until the caller's
    transaction ends, so concurrent issuers queue and no number is skipped or reused."""
    try:
        counter = InvoiceCounter.objects.select_for_update().get(year=year)
    except InvoiceCounter.DoesNotExist:
        try:
            with transaction.atomic():
                InvoiceCounter.objects.create(year=year, last=0)
        except IntegrityError:
            pass  # another issuer created this year's counter first
        counter = InvoiceCounter.objects.select_for_update().get(year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return counter.last


def invoice_issue(
    *,
    customer: Organisation,
    vendor: Organisation,
    purpose: str,
    lines: Sequence[Line],
    currency: str,
    actor: User | None,
    subscription: Subscription | None = None,
    period: tuple[date, date] | None = None,
    corrects: Invoice | None = None,
) -> Invoice:
    """Issue an invoice (or, with ``corrects``, a credit note) and tell the customer.
    Its PDF is rendered and stored once the transaction commits."""
    from billing.tasks import invoice_document_task

    if not lines:
        raise ValidationError("An invoice needs at least one line.")
    if corrects is not None:
        treatment, rate, note = corrects.vat_treatment, corrects.vat_rate, corrects.vat_note
    else:
        decision = vat_for(
            country=customer.country,
            vat_number=customer.vat_number,
            vendor_country=vendor.country,
            domestic_rate=settings.ESCROW_DOMESTIC_VAT_RATE,
        )
        treatment, rate, note = decision.treatment, decision.rate, decision.note
    amounts = invoice_amounts(line_amounts=[line.amount for line in lines], rate=rate)
    today = timezone.localdate()
    kind = Invoice.Kind.CREDIT_NOTE if corrects is not None else Invoice.Kind.INVOICE
    with transaction.atomic():
        sequence = _next_number(today.year)
        invoice = Invoice.objects.create(
            number=f"{today.year}-{sequence:05d}",
            year=today.year,
            sequence=sequence,
            kind=kind,
            purpose=purpose,
            customer=customer,
            vendor=vendor,
            subscription=subscription,
            corrects=corrects,
            issued_on=today,
            due_on=today + timedelta(days=settings.ESCROW_PAYMENT_TERMS_DAYS),
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            currency=currency,
            net_amount=amounts.net,
            vat_treatment=treatment,
            vat_rate=rate,
            vat_amount=amounts.vat,
            total=amounts.total,
            vat_note=note,
            customer_details=_organisation_details(customer),
            vendor_details=_organisation_details(vendor)
            | {"payment_details": settings.ESCROW_INVOICE_PAYMENT_DETAILS},
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice, position=position, description=line.description, amount=amount
            )
            for position, (line, amount) in enumerate(zip(lines, amounts.lines, strict=True), 1)
        )
        transaction.on_commit(lambda: invoice_document_task.delay(invoice.pk))
        audit_record(
            action=f"{kind}.issue",
            actor=actor,
            target=invoice,
            details={"number": invoice.number, "total": str(invoice.total), "currency": currency},
        )
        notify(
            organisation=customer,
            kind=Notification.Kind.INVOICE_ISSUED,
            subject=f"{invoice.get_kind_display()} {invoice.number}",
            body=(
                f"{invoice.get_kind_display()} {invoice.number} for {currency} {invoice.total} "
                f"is in your customer portal.\n"
                + (f"Please pay by {invoice.due_on:%d %B %Y}.\n" if corrects is None else "")
            ),
        )
    return invoice


def credit_note_issue(*, invoice: Invoice, reason: str, actor: User) -> Invoice:
    """Cancel what is left of an invoice with a credit note (an issued invoice never changes)."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "A credit note needs a reason."})
    if invoice.kind != Invoice.Kind.INVOICE:
        raise ValidationError("Only an invoice can be credited.")
    outstanding_net = invoice.net_amount - sum(
        (-note.net_amount for note in invoice.credit_notes.all()), Decimal("0.00")
    )
    if outstanding_net <= 0:
        raise ValidationError(f"Invoice {invoice.number} is credited in full already.")
    return invoice_issue(
        customer=invoice.customer,
        vendor=invoice.vendor,
        purpose=Invoice.Purpose.CORRECTION,
        lines=[Line(f"Credit for invoice {invoice.number}: {reason}"[:300], -outstanding_net)],
        currency=invoice.currency,
        actor=actor,
        subscription=invoice.subscription,
        corrects=invoice,
    )


def parse_amount(raw: str) -> Decimal:
    """A positive amount with at most two decimals, e.g. ``630.00``."""
    try:
        amount = Decimal(raw.strip())
    except (InvalidOperation, AttributeError):
        raise ValidationError(f"{raw!r} is not an amount; write it like 630.00.") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationError(f"{raw!r} is not a positive amount.")
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
        notify(
            organisation=invoice.customer,
            kind=Notification.Kind.PAYMENT_RECEIVED,
            subject=f"Payment received for invoice {invoice.number}",
            body=f"We received {invoice.currency} {amount} for invoice {invoice.number}. Thanks.",
        )
        _after_settlement(invoice, actor)
    return payment


def _after_settlement(invoice: Invoice, actor: User | None) -> None:
    from billing.services import subscription_activate, subscription_renew

    subscription = invoice.subscription
    if subscription is None:
        return
    if (
        invoice.purpose == Invoice.Purpose.SUBSCRIPTION
        and subscription.state == SubscriptionState.AWAITING_PAYMENT
    ):
        subscription_activate(subscription=subscription, actor=actor)
        notify(
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
