"""Payments against invoices, refunds of credited ones, and what settling an invoice
sets in motion (docs/billing.md)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import User
from billing.invoicing import CENT
from billing.models import Invoice, Payment, Refund, Subscription
from billing.models.subscriptions import OPEN_STATES, SubscriptionState
from billing.services import subscription_activate, subscription_reactivate, subscription_renew
from records.links import public_url
from records.models import Notification
from records.services.audit import audit_record
from records.services.notifications import notification_queue


class PaymentRefused(Exception):
    """A payment that cannot be recorded: unknown invoice, wrong amount, already paid,
    credited, for a cancelled subscription, or dated before the invoice or in the future."""


#: Amounts are stored with 14 digits, 2 of them decimals (see billing.models.Invoice).
MAX_AMOUNT = Decimal("1000000000000")


def _quoted(raw: object) -> str:
    """What was typed, quoted for a message; a very long input is cut short."""
    shown = repr(raw)
    return shown if len(shown) <= 60 else f"{shown[:40]}... ({len(str(raw))} characters)"


def parse_amount(raw: str) -> Decimal:
    """A positive amount with at most two decimals, e.g. ``630.00``."""
    try:
        amount = Decimal(raw.strip())
    except (InvalidOperation, AttributeError):
        raise ValidationError(f"{_quoted(raw)} is not an amount; write it like 630.00.") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationError(f"{_quoted(raw)} is not a positive amount.")
    if amount >= MAX_AMOUNT:
        raise ValidationError(f"{_quoted(raw)} is larger than any invoice can be ({MAX_AMOUNT}).")
    if amount != amount.quantize(CENT):
        raise ValidationError(f"{_quoted(raw)} has more than two decimals.")
    return amount


def _day(value: date) -> str:
    return f"{value:%d %B %Y}"


def _not_payable(invoice: Invoice) -> str:
    """Why ``invoice`` may not be paid at all, or "" (docs/billing.md, rule 5)."""
    subscription = invoice.subscription
    notes = ", ".join(note.number for note in invoice.credit_notes.order_by("sequence"))
    credited = f" It was credited by credit note {notes}." if notes else ""
    if subscription is not None and invoice.purpose in (
        Invoice.Purpose.SUBSCRIPTION,
        Invoice.Purpose.RENEWAL,
    ):
        product = subscription.licence.product.name
        if subscription.state == SubscriptionState.CANCELLED:
            when = (
                f" on {_day(timezone.localdate(subscription.cancelled_at))}"
                if subscription.cancelled_at
                else ""
            )
            return (
                f"Invoice {invoice.number} is for the escrow subscription for {product}, which "
                f"was cancelled{when}: it is not payable.{credited}"
            )
        if (
            subscription.is_ending
            and subscription.period_end is not None
            and invoice.period_start is not None
            and invoice.period_start >= subscription.period_end
        ):
            assert subscription.last_covered_day is not None
            return (
                f"Invoice {invoice.number} renews the escrow subscription for {product}, which "
                f"was cancelled: cover ends after {_day(subscription.last_covered_day)} and is "
                f"not renewed.{credited}"
            )
    if notes and invoice.amount_due() <= 0 and invoice.amount_paid() == 0:
        return f"Invoice {invoice.number} is not due.{credited}"
    return ""


def parse_reference(raw: str) -> str:
    """A bank reference as typed: printable text of at most 140 characters, or ""."""
    reference = " ".join(str(raw).split())
    limit = Payment._meta.get_field("reference").max_length
    assert limit is not None
    if len(reference) > limit:
        raise ValidationError(
            f"A bank reference has at most {limit} characters; this one has {len(reference)}."
        )
    if not reference.isprintable():
        raise ValidationError(f"{_quoted(raw)} holds characters that cannot be printed.")
    return reference


def _already_recorded(confirmation: UUID) -> str:
    """Why a confirmation that was used already records nothing more, or ""."""
    earlier = (
        Payment.objects.filter(confirmation=confirmation)
        .select_related("invoice", "recorded_by")
        .first()
    )
    if earlier is None:
        return ""
    when = timezone.localtime(earlier.created_at)
    return (
        f"This confirmation was submitted before: the payment of {earlier.invoice.currency} "
        f"{earlier.amount} received on {_day(earlier.received_on)} for invoice "
        f"{earlier.invoice.number} was recorded at {when:%H:%M} on {_day(when.date())}. "
        "Nothing more was recorded."
    )


def payment_refusal(*, invoice: Invoice) -> str:
    """Why no payment can be recorded for ``invoice`` at all (a credit note, nothing due,
    a cancelled subscription's invoice...), or "" when one can: staff are told before
    they fill in a payment, not only when they confirm it."""
    if invoice.kind != Invoice.Kind.INVOICE:
        return f"{invoice} is a credit note; it is not paid."
    problem = _not_payable(invoice)
    if problem:
        return problem
    if invoice.amount_due() <= 0:
        return f"{invoice} has nothing due: there is no payment to record."
    return ""


def payment_record(
    *,
    invoice_number: str,
    amount: Decimal,
    received_on: date,
    actor: User | None,
    reference: str = "",
    confirmation: UUID | None = None,
) -> Payment:
    """Record a payment of exactly what is due, received on a day between the invoice's
    issue and today, with the bank's ``reference`` if there is one. A settled first or
    renewal invoice then activates, renews or (when the subscription lapsed meanwhile)
    reactivates its subscription for the period that invoice names. Anything refused is
    refused whole: nothing is recorded.

    ``confirmation`` is the one-time key of the admin's confirmation page: a key that
    recorded a payment already is refused, so a confirmation submitted twice (a double
    click, a reload) records one payment."""
    try:
        reference = parse_reference(reference)
    except ValidationError as error:
        raise PaymentRefused(f"{' '.join(error.messages)} Nothing was recorded.") from None
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(number=invoice_number).first()
        if invoice is None:
            raise PaymentRefused(f"There is no invoice {invoice_number!r}.")
        if confirmation is not None:
            used = _already_recorded(confirmation)
            if used:
                raise PaymentRefused(used)
        if invoice.kind != Invoice.Kind.INVOICE:
            raise PaymentRefused(f"{invoice_number} is a credit note; it is not paid.")
        problem = _not_payable(invoice)
        if problem:
            raise PaymentRefused(f"{problem} Nothing was recorded.")
        due = invoice.amount_due()
        if due <= 0:
            raise PaymentRefused(f"Invoice {invoice_number} is paid already.")
        if amount != due:
            raise PaymentRefused(
                f"Invoice {invoice_number} has {invoice.currency} {due} due, not {amount}; "
                "nothing was recorded."
            )
        today = timezone.localdate()
        if received_on > today:
            raise PaymentRefused(
                f"A payment cannot be received in the future: {received_on} is after today "
                f"({today}). Nothing was recorded for invoice {invoice_number}."
            )
        if received_on < invoice.issued_on:
            raise PaymentRefused(
                f"Invoice {invoice_number} was issued on {invoice.issued_on}; a payment "
                f"received on {received_on} is before it. Nothing was recorded."
            )
        _refuse_a_second_open_subscription(invoice)
        payment = Payment.objects.create(
            invoice=invoice,
            amount=amount,
            received_on=received_on,
            reference=reference,
            confirmation=confirmation,
            recorded_by=actor,
        )
        details = {"amount": str(amount), "received_on": received_on.isoformat()}
        if reference:
            details["reference"] = reference
        audit_record(action="payment.record", actor=actor, target=invoice, details=details)
        notification_queue(
            organisation=invoice.customer,
            kind=Notification.Kind.PAYMENT_RECEIVED,
            subject=f"Payment received for invoice {invoice.number}",
            body=f"We received {invoice.currency} {amount} for invoice {invoice.number}. Thanks.",
        )
        _after_settlement(invoice, actor)
    return payment


def _refuse_a_second_open_subscription(invoice: Invoice) -> None:
    """A lapsed subscription is reactivated by its late payment only while its licence
    has no other open subscription (re-subscribing is refused while such an invoice is
    unpaid, so this guards against a credited-then-resubscribed mix-up)."""
    subscription = invoice.subscription
    if subscription is None or subscription.state != SubscriptionState.LAPSED:
        return
    other = (
        Subscription.objects.filter(licence=subscription.licence, state__in=OPEN_STATES)
        .exclude(pk=subscription.pk)
        .first()
    )
    if other is not None:
        raise PaymentRefused(
            f"Invoice {invoice.number} is for a lapsed escrow subscription, and the licence "
            f"has a newer one ({other.get_state_display().lower()}): paying it would cover the "
            "licence twice. Nothing was recorded; credit it instead."
        )


def _after_settlement(invoice: Invoice, actor: User | None) -> None:
    """What paying a first or renewal invoice sets off: always for the invoice's own
    period, never one computed from the day the money arrived (docs/billing.md, rule 2)."""
    subscription = invoice.subscription
    if subscription is None or invoice.purpose not in (
        Invoice.Purpose.SUBSCRIPTION,
        Invoice.Purpose.RENEWAL,
    ):
        return
    assert invoice.period_start is not None and invoice.period_end is not None
    period = (invoice.period_start, invoice.period_end)
    product = subscription.licence.product.name
    last_day = _day(_last_day(period))
    if (
        subscription.state == SubscriptionState.AWAITING_PAYMENT
        and invoice.purpose == Invoice.Purpose.SUBSCRIPTION
    ):
        subscription_activate(subscription=subscription, actor=actor, period=period)
        notification_queue(
            organisation=invoice.customer,
            kind=Notification.Kind.SUBSCRIPTION_ACTIVATED,
            subject=f"Escrow for {product} is active",
            body=(
                f"Your licence of {product} is now on the escrow list, covered from "
                f"{_day(period[0])} until {last_day}."
            ),
        )
    elif subscription.state == SubscriptionState.LAPSED:
        subscription_reactivate(
            subscription=subscription,
            actor=actor,
            period=period,
            reason=f"invoice {invoice.number} paid after the subscription lapsed",
        )
        notification_queue(
            organisation=invoice.customer,
            kind=Notification.Kind.SUBSCRIPTION_REACTIVATED,
            subject=f"Escrow for {product} is active again",
            body=(
                f"We received the payment of invoice {invoice.number}. Your escrow subscription "
                f"for {product} is active again, covered from {_day(period[0])} until "
                f"{last_day}, the period that invoice paid for.\n"
                f"{public_url(reverse('portal:dashboard'))}"
            ),
        )
    elif (
        subscription.state == SubscriptionState.ACTIVE
        and invoice.purpose == Invoice.Purpose.RENEWAL
        and (subscription.period_end is None or period[1] > subscription.period_end)
    ):
        subscription_renew(subscription=subscription, actor=actor, period=period)


def _last_day(period: tuple[date, date]) -> date:
    """The last day a period covers: its end is the first day it no longer does."""
    return date.fromordinal(period[1].toordinal() - 1)


def refund_record(
    *, invoice: Invoice, amount: Decimal, paid_on: date, reason: str, actor: User
) -> Refund:
    """Staff record money paid back on an invoice that was paid and then credited.

    At most what is owed back (``Invoice.refund_owed``), paid on a day between the
    invoice's issue and today, with a reason; the customer is told."""
    if not roles.staff_only(invoice, actor):
        raise PermissionDenied("Only staff record refunds.")
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "A refund needs a reason."})
    if len(reason) > Refund._meta.get_field("reason").max_length:  # type: ignore[operator]
        raise ValidationError({"reason": "Keep the reason under 300 characters."})
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
        raise ValidationError({"amount": f"Refund a positive amount in cents, not {amount}."})
    today = timezone.localdate()
    if paid_on > today:
        raise ValidationError({"paid_on": f"A refund cannot be paid in the future ({paid_on})."})
    if paid_on < invoice.issued_on:
        raise ValidationError(
            {
                "paid_on": f"Invoice {invoice.number} was issued on {invoice.issued_on}; a "
                f"refund paid on {paid_on} is before it."
            }
        )
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        owed = locked.refund_owed()
        if locked.kind != Invoice.Kind.INVOICE or owed <= 0:
            raise ValidationError(
                f"Nothing is owed back on {locked}: only an invoice that was paid and then "
                "credited is refunded."
            )
        if amount > owed:
            raise ValidationError(
                {
                    "amount": f"{locked.currency} {owed} is owed back on invoice "
                    f"{locked.number}, less than {amount}."
                }
            )
        refund = Refund.objects.create(
            invoice=locked, amount=amount, paid_on=paid_on, reason=reason, recorded_by=actor
        )
        audit_record(
            action="refund.record",
            actor=actor,
            target=locked,
            reason=reason,
            details={"amount": str(amount), "paid_on": paid_on.isoformat()},
        )
        notification_queue(
            organisation=locked.customer,
            kind=Notification.Kind.REFUND_RECORDED,
            subject=f"Refund for invoice {locked.number}",
            body=(
                f"We paid back {locked.currency} {amount} on invoice {locked.number} on "
                f"{_day(paid_on)}: {reason}\n{public_url(reverse('portal:invoices'))}"
            ),
        )
    return refund
