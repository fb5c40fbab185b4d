"""Issuing invoices and credit notes, recording payments, and what payments set off."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Organisation, User
from billing.models import Invoice, InvoiceCounter, InvoiceLine, Subscription
from billing.vat import invoice_amounts, vat_for
from records.links import public_url
from records.models import Notification
from records.queue import enqueue_on_commit
from records.services.audit import audit_record
from records.services.notifications import notification_queue

CENT = Decimal("0.01")


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
    Its PDF is rendered and stored once the transaction commits.

    Longer than most: numbering, the lines, VAT and the audit row must all happen
    inside the one transaction that holds the year's counter lock, so they stay
    together rather than being split across helpers that each need that lock."""

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
        enqueue_on_commit("billing.invoice_document_render", invoice_id=invoice.pk)
        audit_record(
            action=f"{kind}.issue",
            actor=actor,
            target=invoice,
            details={"number": invoice.number, "total": str(invoice.total), "currency": currency},
        )
        notification_queue(
            organisation=customer,
            kind=Notification.Kind.INVOICE_ISSUED,
            subject=f"{invoice.get_kind_display()} {invoice.number}",
            body=(
                f"{invoice.get_kind_display()} {invoice.number} for {currency} {invoice.total} "
                f"is in your customer portal: {public_url(reverse('portal:invoices'))}\n"
                + (
                    f"Please pay by {invoice.due_on:%d %B %Y}.\n"
                    if corrects is None
                    else f"It credits invoice {corrects.number}.\n"
                )
            ),
        )
    return invoice


def creditable_net(invoice: Invoice) -> Decimal:
    """What of an invoice's net amount (excluding VAT) its credit notes have not credited."""
    credited = sum((-note.net_amount for note in invoice.credit_notes.all()), Decimal("0.00"))
    return invoice.net_amount - credited


def credit_note_issue(
    *,
    invoice: Invoice,
    reason: str,
    actor: User | None,
    net_amount: Decimal | None = None,
    credited_before: int | None = None,
) -> Invoice:
    """Cancel what is left of an invoice (or ``net_amount`` of it, net of VAT) with a
    credit note: an issued invoice never changes. ``actor`` is the member of staff,
    or ``None`` when the system credits it (a cancelled subscription's unpaid invoice).

    ``credited_before`` is how many credit notes the invoice had when staff confirmed
    this one: if another was issued since (the same confirmation submitted twice, or a
    colleague's), nothing is issued.

    A credited invoice that had been paid is then owed back (``Invoice.refund_owed``)
    until staff record the refund (``billing.payments.refund_record``)."""
    with transaction.atomic():
        if credited_before is not None:
            _refuse_if_credited_since(invoice, credited_before)
        return _credit_note_issue(
            invoice=invoice, reason=reason, actor=actor, net_amount=net_amount
        )


def _refuse_if_credited_since(invoice: Invoice, credited_before: int) -> None:
    # Locking the invoice makes a second, concurrent confirmation wait for the first.
    Invoice.objects.select_for_update().filter(pk=invoice.pk).first()
    notes = list(invoice.credit_notes.order_by("sequence"))
    if len(notes) != credited_before:
        numbers = ", ".join(note.number for note in notes[credited_before:]) or "none"
        raise ValidationError(
            f"Invoice {invoice.number} changed since this credit note was confirmed (credit "
            f"notes issued since: {numbers}). Was the confirmation submitted twice? Nothing "
            "was issued; look at the invoice and start again if a credit note is still needed."
        )


def _credit_note_issue(
    *, invoice: Invoice, reason: str, actor: User | None, net_amount: Decimal | None
) -> Invoice:
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "A credit note needs a reason."})
    if invoice.kind != Invoice.Kind.INVOICE:
        raise ValidationError(f"{invoice} is a credit note; only an invoice can be credited.")
    outstanding_net = creditable_net(invoice)
    if outstanding_net <= 0:
        raise ValidationError(f"Invoice {invoice.number} is credited in full already.")
    if net_amount is None:
        net_amount = outstanding_net
    if not net_amount.is_finite() or net_amount <= 0 or net_amount != net_amount.quantize(CENT):
        raise ValidationError(
            {"net_amount": f"Credit a positive amount in cents, not {net_amount}."}
        )
    if net_amount > outstanding_net:
        raise ValidationError(
            {
                "net_amount": f"Invoice {invoice.number} has {invoice.currency} {outstanding_net} "
                f"net left to credit, less than {net_amount}."
            }
        )
    return invoice_issue(
        customer=invoice.customer,
        vendor=invoice.vendor,
        purpose=Invoice.Purpose.CORRECTION,
        lines=[Line(f"Credit for invoice {invoice.number}: {reason}"[:300], -net_amount)],
        currency=invoice.currency,
        actor=actor,
        subscription=invoice.subscription,
        corrects=invoice,
    )
