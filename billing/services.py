"""Licences and escrow subscriptions."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from accounts.models import Organisation, Product, User
from billing.invoicing import Line, invoice_issue
from billing.models import Invoice, LicenceAgreement, Subscription, SubscriptionState
from billing.models.subscriptions import OPEN_STATES
from billing.periods import add_years, period_containing
from records.models import Notification
from records.services.audit import audit_record
from records.services.notifications import notification_queue
from records.services.transitions import apply_transition


def licence_create(
    *,
    customer: Organisation,
    product: Product,
    annual_fee: Decimal,
    currency: str,
    start_date: date,
    actor: User | None,
) -> LicenceAgreement:
    """Record a customer's licence; the fee is a non-negative amount with at most 2 decimals."""
    licence = LicenceAgreement(
        customer=customer,
        product=product,
        annual_fee=annual_fee,
        currency=currency,
        start_date=start_date,
    )
    licence.full_clean()
    with transaction.atomic():
        licence.save(force_insert=True)
        audit_record(
            action="licence.create",
            actor=actor,
            target=licence,
            details={"annual_fee": str(annual_fee), "currency": currency},
        )
    return licence


def subscription_request(*, licence: LicenceAgreement, actor: User) -> Subscription:
    """A customer user (or staff) asks to put a licence on the escrow list."""
    subscription = Subscription(licence=licence)
    if not roles.licence_holder_or_staff(subscription, actor):
        raise PermissionDenied("Only the licence holder or staff can subscribe this licence.")
    subscription.full_clean(exclude=["state"])
    already_open = ValidationError(
        "This licence already has an open escrow subscription.", code="subscription_open"
    )
    if Subscription.objects.filter(licence=licence, state__in=OPEN_STATES).exists():
        raise already_open
    with transaction.atomic():
        try:
            # The partial unique index settles a race between two requests.
            with transaction.atomic():
                subscription.save(force_insert=True)
        except IntegrityError:
            raise already_open from None
        audit_record(
            action="subscription.request",
            actor=actor,
            target=subscription,
            to_state=subscription.state,
            details={"fee_rate": str(subscription.fee_rate)},
        )
    return subscription


def subscription_await_payment(*, subscription: Subscription, actor: User) -> Subscription:
    """The escrow terms were accepted (by ``actor``, now) and the first invoice is due."""
    return apply_transition(
        subscription, "await_payment", actor=actor, accepted_at=timezone.now(), accepted_by=actor
    )


def subscription_activate(*, subscription: Subscription, actor: User | None) -> Subscription:
    """Payment in full arrived: the licence is on the escrow list for the current
    subscription year (licence anniversary to licence anniversary)."""
    start, end = period_containing(
        licence_start=subscription.licence.start_date, today=timezone.localdate()
    )
    return apply_transition(
        subscription,
        "activate",
        actor=actor,
        period_start=start,
        period_end=end,
        details={"period_start": start.isoformat(), "period_end": end.isoformat()},
    )


def subscription_renew(*, subscription: Subscription, actor: User | None) -> Subscription:
    """The renewal was paid: the subscription runs one more year from its current end."""
    current_end = subscription.period_end or timezone.localdate()
    end = add_years(current_end, 1)
    return apply_transition(
        subscription,
        "renew",
        actor=actor,
        period_start=current_end,
        period_end=end,
        details={"period_start": current_end.isoformat(), "period_end": end.isoformat()},
    )


def subscription_lapse(*, subscription: Subscription, reason: str) -> Subscription:
    """An invoice stayed unpaid past the grace period (system only)."""
    return apply_transition(subscription, "lapse", actor=None, reason=reason)


def subscription_cancel(
    *, subscription: Subscription, actor: User, reason: str = ""
) -> Subscription:
    """The customer or staff end the subscription."""
    return apply_transition(subscription, "cancel", actor=actor, reason=reason)


def subscription_subscribe(
    *, licence: LicenceAgreement, actor: User, accept_terms: bool
) -> Subscription:
    """Put a licence on the escrow list: the escrow terms are accepted, the
    subscription awaits payment and the first year's invoice is issued."""
    if not accept_terms:
        raise ValidationError(
            {
                "accept_terms": "Accept the escrow terms: a released deposit is for your own use "
                "only and may never be resold."
            }
        )
    with transaction.atomic():
        subscription = subscription_request(licence=licence, actor=actor)
        subscription_await_payment(subscription=subscription, actor=actor)
        period = period_containing(licence_start=licence.start_date, today=timezone.localdate())
        invoice_issue(
            customer=licence.customer,
            vendor=licence.product.vendor,
            purpose=Invoice.Purpose.SUBSCRIPTION,
            lines=[_fee_line(subscription, period)],
            currency=licence.currency,
            actor=actor,
            subscription=subscription,
            period=period,
        )
    return subscription


def _fee_line(subscription: Subscription, period: tuple[date, date]) -> Line:
    licence = subscription.licence
    percent = (subscription.fee_rate * 100).normalize()
    return Line(
        f"Software escrow for {licence.product.name}, {period[0]:%d %b %Y} to "
        f"{period[1] - timedelta(days=1):%d %b %Y}: {percent}% of the annual licence fee of "
        f"{licence.currency} {licence.annual_fee}",
        subscription.fee,
    )


def subscriptions_renew_due(*, today: date) -> list[Invoice]:
    """Invoice the next year of every active subscription whose year ends within
    ESCROW_RENEWAL_NOTICE_DAYS, once. The fee follows the licence fee of today."""
    horizon = today + timedelta(days=settings.ESCROW_RENEWAL_NOTICE_DAYS)
    issued = []
    for subscription in Subscription.objects.filter(
        state=SubscriptionState.ACTIVE, period_end__lte=horizon
    ).select_related("licence__product__vendor", "licence__customer"):
        assert subscription.period_end is not None
        period = (subscription.period_end, add_years(subscription.period_end, 1))
        if subscription.invoices.filter(
            purpose=Invoice.Purpose.RENEWAL, period_start=period[0]
        ).exists():
            continue
        with transaction.atomic():
            invoice = invoice_issue(
                customer=subscription.licence.customer,
                vendor=subscription.licence.product.vendor,
                purpose=Invoice.Purpose.RENEWAL,
                lines=[_fee_line(subscription, period)],
                currency=subscription.licence.currency,
                actor=None,
                subscription=subscription,
                period=period,
            )
            notification_queue(
                organisation=subscription.licence.customer,
                kind=Notification.Kind.RENEWAL_DUE,
                subject=f"Escrow renewal for {subscription.licence.product.name}",
                body=(
                    f"Your escrow subscription for {subscription.licence.product.name} runs until "
                    f"{period[0]:%d %B %Y}. Invoice {invoice.number} renews it for a year."
                ),
            )
        issued.append(invoice)
    return issued


def subscriptions_lapse_overdue(*, today: date) -> list[Subscription]:
    """Lapse subscriptions whose invoice is unpaid ESCROW_PAYMENT_GRACE_DAYS past its due
    date (first year) or past the end of the paid year (renewal)."""
    grace = timedelta(days=settings.ESCROW_PAYMENT_GRACE_DAYS)
    lapsed = []
    candidates = Subscription.objects.filter(
        state__in=[SubscriptionState.AWAITING_PAYMENT, SubscriptionState.ACTIVE]
    ).select_related("licence__customer", "licence__product")
    for subscription in candidates:
        if subscription.state == SubscriptionState.AWAITING_PAYMENT:
            first = subscription.invoices.filter(purpose=Invoice.Purpose.SUBSCRIPTION).first()
            overdue = first is not None and first.due_on + grace < today and not first.is_settled
            reason = f"invoice {first.number if first else ''} unpaid {grace.days} days after due"
        else:
            overdue = (
                subscription.period_end is not None and subscription.period_end + grace < today
            )
            reason = f"renewal unpaid {grace.days} days after the paid year ended"
        if not overdue:
            continue
        with transaction.atomic():
            subscription_lapse(subscription=subscription, reason=reason)
            notification_queue(
                organisation=subscription.licence.customer,
                kind=Notification.Kind.SUBSCRIPTION_LAPSED,
                subject=f"Escrow for {subscription.licence.product.name} has lapsed",
                body=(
                    f"Your escrow subscription for {subscription.licence.product.name} lapsed: "
                    f"{reason}. You can no longer claim a release of its source."
                ),
            )
        lapsed.append(subscription)
    return lapsed
