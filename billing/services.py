"""Licences and escrow subscriptions: subscribing, activating, renewing, lapsing,
reactivating, cancelling and ending (the rules are in docs/billing.md)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import Organisation, Product, User
from billing.agreements import agreement_accept, agreement_current
from billing.fees import prorated
from billing.invoicing import credit_note_issue, invoice_issue
from billing.models import Invoice, LicenceAgreement, Subscription, SubscriptionState
from billing.models.subscriptions import OPEN_STATES
from billing.periods import renewal_period
from billing.pricing import first_period_quote, period_line
from billing.selectors import unpaid_invoice_of_lapsed_subscription
from records.links import public_url
from records.models import Notification
from records.services.audit import audit_record
from records.services.notifications import notification_queue
from records.services.transitions import apply_transition


def _day(value: date) -> str:
    return f"{value:%d %B %Y}"


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


def _period_details(period: tuple[date, date]) -> dict[str, str]:
    return {"period_start": period[0].isoformat(), "period_end": period[1].isoformat()}


def subscription_activate(
    *,
    subscription: Subscription,
    actor: User | None,
    period: tuple[date, date] | None = None,
    reason: str = "",
) -> Subscription:
    """The first period is paid (or costs nothing): the licence is on the escrow list for
    ``period``, the one its invoice names. Without a period (staff activating by hand),
    the first period a subscription starting today would have (docs/billing.md, rule 1)."""
    if period is None:
        period = first_period_quote(
            licence=subscription.licence, fee_rate=subscription.fee_rate, today=timezone.localdate()
        ).period
    return apply_transition(
        subscription,
        "activate",
        actor=actor,
        reason=reason,
        period_start=period[0],
        period_end=period[1],
        details=_period_details(period),
    )


def subscription_renew(
    *,
    subscription: Subscription,
    actor: User | None,
    period: tuple[date, date] | None = None,
    reason: str = "",
) -> Subscription:
    """The renewal was paid (or costs nothing): the subscription covers ``period``, the one
    the renewal invoice names; without one, the licence year after the current end."""
    if period is None:
        current_end = subscription.period_end or timezone.localdate()
        period = renewal_period(
            licence_start=subscription.licence.start_date, current_end=current_end
        )
    return apply_transition(
        subscription,
        "renew",
        actor=actor,
        reason=reason,
        period_start=period[0],
        period_end=period[1],
        details=_period_details(period),
    )


def subscription_reactivate(
    *, subscription: Subscription, actor: User | None, period: tuple[date, date], reason: str = ""
) -> Subscription:
    """A lapsed subscription's invoice was paid late: it is active again for exactly the
    period that invoice paid for (docs/billing.md, rule 3)."""
    return apply_transition(
        subscription,
        "reactivate",
        actor=actor,
        reason=reason,
        period_start=period[0],
        period_end=period[1],
        details=_period_details(period),
    )


def subscription_lapse(*, subscription: Subscription, reason: str) -> Subscription:
    """An invoice stayed unpaid past the grace period (system only)."""
    return apply_transition(subscription, "lapse", actor=None, reason=reason)


def _credit_unpaid(subscription: Subscription, *, reason: str, since: date | None = None) -> None:
    """Credit every invoice of the subscription that is still unpaid (for a period that
    starts on or after ``since``, when given), so nothing is left due for cover that
    will never be given. The system issues these credit notes."""
    invoices = subscription.invoices.filter(kind=Invoice.Kind.INVOICE)
    if since is not None:
        invoices = invoices.filter(period_start__gte=since)
    for invoice in invoices.order_by("year", "sequence"):
        if invoice.amount_due() > 0 and invoice.amount_paid() == 0:
            credit_note_issue(invoice=invoice, reason=reason, actor=None)


def _tell_about_cancellation(subscription: Subscription, *, actor: User, reason: str) -> None:
    """The customer gets an e-mail; staff are told, so a refund request finds them ready."""
    licence = subscription.licence
    product = licence.product.name
    if subscription.is_ending:
        assert subscription.last_covered_day is not None
        cover = (
            f"Your escrow cover continues until {_day(subscription.last_covered_day)}, and then "
            "ends: it is not renewed and no renewal invoice will be issued. Until then the "
            "deposits stay visible and you may still claim a release. Cancelling does not "
            "refund the paid period; if you want the unused part credited, ask us."
        )
        staff_cover = f"cover until {_day(subscription.last_covered_day)}, no renewal"
    else:
        cover = "Escrow cover has ended; any unpaid invoice for it was credited."
        staff_cover = "ended at once"
    notification_queue(
        organisation=licence.customer,
        kind=Notification.Kind.SUBSCRIPTION_CANCELLED,
        subject=f"Escrow for {product} is cancelled",
        body=(
            f"The escrow subscription for your licence of {product} was cancelled by "
            f"{actor.full_name or actor.email}.\n{cover}\n{public_url(reverse('portal:dashboard'))}"
        ),
    )
    notification_queue(
        audience=Notification.Audience.STAFF,
        kind=Notification.Kind.SUBSCRIPTION_CANCELLED,
        subject=f"{licence.customer.name} cancelled escrow for {product}",
        body=(
            f"{licence.customer.name} (by {actor.email}) cancelled its escrow subscription "
            f"for {product}: {staff_cover}." + (f"\nReason: {reason}" if reason else "")
        ),
    )


def _cancel_at_once(subscription: Subscription, *, actor: User, reason: str) -> None:
    apply_transition(
        subscription,
        "cancel",
        actor=actor,
        reason=reason,
        cancelled_at=timezone.now(),
        cancelled_by=actor,
    )


def subscription_cancel(
    *, subscription: Subscription, actor: User, reason: str = ""
) -> Subscription:
    """End the subscription now: it no longer covers anything, and its unpaid invoices
    are credited. The customer and staff are told.

    The portal uses this only for a subscription that is not yet paid (or lapsed); a
    paid one is cancelled at its period's end (``subscription_cancel_at_period_end``),
    and staff end paid cover early with ``subscription_end_cover_now``."""
    with transaction.atomic():
        _cancel_at_once(subscription, actor=actor, reason=reason)
        _credit_unpaid(subscription, reason="escrow subscription cancelled")
        _tell_about_cancellation(subscription, actor=actor, reason=reason)
    return subscription


def subscription_cancel_at_period_end(
    *, subscription: Subscription, actor: User, reason: str = ""
) -> Subscription:
    """Cancel as the customer asks in the portal (docs/billing.md, rule 4).

    A paid, active subscription stays active (and covered) until its period ends: no
    renewal invoice is issued, an unpaid one for the next period is credited, and
    ``subscriptions_end_cancelled`` ends it on the day its period ends. One that is
    not paid yet, or lapsed, is cancelled at once and its unpaid invoice credited."""
    if subscription.state != SubscriptionState.ACTIVE:
        return subscription_cancel(subscription=subscription, actor=actor, reason=reason)
    if not roles.licence_holder_or_staff(subscription, actor):
        raise PermissionDenied(f"{actor} may not cancel this subscription.")
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if locked.state != SubscriptionState.ACTIVE:
            raise ValidationError(
                f"The escrow subscription changed meanwhile: it is {locked.get_state_display()}."
            )
        if locked.cancelled_at is not None:
            assert locked.last_covered_day is not None
            raise ValidationError(
                f"This escrow subscription is cancelled already; cover ends after "
                f"{_day(locked.last_covered_day)}."
            )
        now = timezone.now()
        Subscription.objects.filter(pk=locked.pk).update(
            cancelled_at=now, cancelled_by=actor, updated_at=now
        )
        subscription.refresh_from_db()
        audit_record(
            action="subscription.cancel_at_period_end",
            actor=actor,
            target=subscription,
            reason=reason,
            details={"cover_until": str(subscription.last_covered_day)},
        )
        assert subscription.period_end is not None
        _credit_unpaid(
            subscription,
            reason="escrow subscription cancelled: not renewed",
            since=subscription.period_end,
        )
        _tell_about_cancellation(subscription, actor=actor, reason=reason)
    return subscription


def subscription_end_cover_now(
    *, subscription: Subscription, actor: User, reason: str
) -> list[Invoice]:
    """Staff end a subscription's cover today and credit what it paid for the days it
    will not be covered (docs/billing.md, rule 7): each invoice of a period that has not
    ended is credited pro rata, by the days from today to the period's end. A paid
    invoice credited so is then owed back (``refund_record``). Returns the credit notes."""
    if not roles.staff_only(subscription, actor):
        raise PermissionDenied("Only staff end cover early with a credit note.")
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Give the reason for ending cover early."})
    today = timezone.localdate()
    notes = []
    with transaction.atomic():
        _cancel_at_once(subscription, actor=actor, reason=reason)
        for invoice in subscription.invoices.filter(
            kind=Invoice.Kind.INVOICE, period_end__gt=today
        ).order_by("year", "sequence"):
            assert invoice.period_start is not None and invoice.period_end is not None
            days = (invoice.period_end - invoice.period_start).days
            unused = (invoice.period_end - max(invoice.period_start, today)).days
            left = invoice.net_amount + sum(
                (note.net_amount for note in invoice.credit_notes.all()), Decimal("0.00")
            )
            credit = min(prorated(amount=invoice.net_amount, days=unused, of_days=days), left)
            if credit > 0:
                notes.append(
                    credit_note_issue(
                        invoice=invoice,
                        reason=f"cover ended early, {unused} of {days} days unused: {reason}",
                        actor=actor,
                        net_amount=credit,
                    )
                )
        _tell_about_cancellation(subscription, actor=actor, reason=reason)
    return notes


def subscription_subscribe(
    *,
    licence: LicenceAgreement,
    actor: User,
    accept_terms: bool,
    agreement_version: int | None = None,
    ip_address: str = "",
) -> Subscription:
    """Put a licence on the escrow list: the escrow terms are accepted, the subscription
    awaits payment and the first period's invoice is issued, priced by the same quote
    the subscribe page shows (``billing.pricing.first_period_quote``). When the period
    costs nothing, it is active at once and no invoice is issued.

    Accepting the terms is accepting the current version of the escrow agreement: the
    acceptance (version, person, organisation, time, ``ip_address``) is recorded in the
    same transaction. ``agreement_version`` is the version the customer was shown; if
    another version became current since, nothing is subscribed."""
    if not accept_terms:
        raise ValidationError(
            {
                "accept_terms": "Accept the escrow terms: a released deposit is for your own use "
                "only and may never be resold."
            }
        )
    unpaid = unpaid_invoice_of_lapsed_subscription(licence)
    if unpaid is not None:
        raise ValidationError(resubscribe_refusal(unpaid), code="unpaid_lapsed_invoice")
    agreement = agreement_current()
    if agreement_version is not None and agreement_version != agreement.version:
        raise ValidationError(
            f"The escrow agreement changed since the page was shown: version "
            f"{agreement.version} is now current. Read it and accept it to subscribe.",
            code="agreement_changed",
        )
    with transaction.atomic():
        subscription = subscription_request(licence=licence, actor=actor)
        agreement_accept(
            agreement=agreement, subscription=subscription, actor=actor, ip_address=ip_address
        )
        subscription_await_payment(subscription=subscription, actor=actor)
        quote = first_period_quote(
            licence=licence, fee_rate=subscription.fee_rate, today=timezone.localdate()
        )
        if quote.is_free:
            subscription_activate(
                subscription=subscription,
                actor=None,
                period=quote.period,
                reason=f"no fee is due for the first period ({quote.currency} {quote.total}): "
                "active without an invoice",
            )
            notification_queue(
                organisation=licence.customer,
                kind=Notification.Kind.SUBSCRIPTION_ACTIVATED,
                subject=f"Escrow for {licence.product.name} is active",
                body=(
                    f"Your licence of {licence.product.name} is on the escrow list, covered "
                    f"from {_day(quote.period[0])} until {_day(quote.last_day)}. No fee is "
                    "due, so there is no invoice."
                ),
            )
        else:
            invoice_issue(
                customer=licence.customer,
                vendor=licence.product.vendor,
                purpose=Invoice.Purpose.SUBSCRIPTION,
                lines=list(quote.lines),
                currency=licence.currency,
                actor=actor,
                subscription=subscription,
                period=quote.period,
            )
    return subscription


def resubscribe_refusal(unpaid: Invoice) -> str:
    """Why a licence with an unpaid invoice of a lapsed subscription is not subscribed
    again: that invoice already bills the period, and paying it reactivates the
    subscription for it (docs/billing.md, rule 3)."""
    assert unpaid.subscription is not None
    period = ""
    if unpaid.period_start and unpaid.period_end:
        last = unpaid.period_end - timedelta(days=1)
        period = f" for {_day(unpaid.period_start)} to {_day(last)}"
    return (
        f"Invoice {unpaid.number} ({unpaid.currency} {unpaid.amount_due()}{period}) of the "
        f"lapsed escrow subscription for {unpaid.subscription.licence.product.name} is unpaid: "
        f"pay invoice {unpaid.number} to reactivate it, rather than subscribing again (that "
        "would bill the same period twice). If you do not want that period, ask us to credit "
        "the invoice; then you can subscribe afresh."
    )


def subscriptions_renew_due(*, today: date) -> list[Invoice]:
    """Invoice the next period of every active subscription whose period ends within
    ESCROW_RENEWAL_NOTICE_DAYS, once; the fee follows the licence fee of today. A
    cancelled subscription is not renewed; one whose renewal costs nothing is renewed
    at once, without an invoice (docs/billing.md, rules 4 and 6)."""
    horizon = today + timedelta(days=settings.ESCROW_RENEWAL_NOTICE_DAYS)
    issued = []
    for subscription in Subscription.objects.filter(
        state=SubscriptionState.ACTIVE, cancelled_at__isnull=True, period_end__lte=horizon
    ).select_related("licence__product__vendor", "licence__customer"):
        assert subscription.period_end is not None
        licence = subscription.licence
        period = renewal_period(
            licence_start=licence.start_date, current_end=subscription.period_end
        )
        if subscription.invoices.filter(
            purpose=Invoice.Purpose.RENEWAL, period_start=period[0]
        ).exists():
            continue
        line = period_line(licence=licence, fee_rate=subscription.fee_rate, piece=period)
        if line.amount == 0:
            subscription_renew(
                subscription=subscription,
                actor=None,
                period=period,
                reason=f"no fee is due for the period ({licence.currency} 0.00): renewed "
                "without an invoice",
            )
            continue
        with transaction.atomic():
            invoice = invoice_issue(
                customer=licence.customer,
                vendor=licence.product.vendor,
                purpose=Invoice.Purpose.RENEWAL,
                lines=[line],
                currency=licence.currency,
                actor=None,
                subscription=subscription,
                period=period,
            )
            notification_queue(
                organisation=licence.customer,
                kind=Notification.Kind.RENEWAL_DUE,
                subject=f"Escrow renewal for {licence.product.name}",
                body=(
                    f"Your escrow subscription for {licence.product.name} runs until "
                    f"{_day(period[0] - timedelta(days=1))}. Invoice {invoice.number} renews "
                    f"it from {_day(period[0])} until {_day(period[1] - timedelta(days=1))}."
                ),
            )
        issued.append(invoice)
    return issued


def subscriptions_lapse_overdue(*, today: date) -> list[Subscription]:
    """Lapse subscriptions whose first invoice is unpaid ESCROW_PAYMENT_GRACE_DAYS past its
    due date, or whose paid period ended that long ago without a paid renewal. A cancelled
    subscription does not lapse: it ends (``subscriptions_end_cancelled``)."""
    grace = timedelta(days=settings.ESCROW_PAYMENT_GRACE_DAYS)
    lapsed = []
    candidates = Subscription.objects.filter(
        state__in=[SubscriptionState.AWAITING_PAYMENT, SubscriptionState.ACTIVE],
        cancelled_at__isnull=True,
    ).select_related("licence__customer", "licence__product")
    for subscription in candidates:
        if subscription.state == SubscriptionState.AWAITING_PAYMENT:
            first = subscription.invoices.filter(purpose=Invoice.Purpose.SUBSCRIPTION).first()
            overdue = (
                first is not None and first.due_on + grace < today and not first.payments.exists()
            )
            reason = f"invoice {first.number if first else ''} unpaid {grace.days} days after due"
        else:
            overdue = (
                subscription.period_end is not None and subscription.period_end + grace < today
            )
            reason = f"renewal unpaid {grace.days} days after the paid period ended"
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
                    f"{reason}. You can no longer claim a release of its source. Paying the "
                    "unpaid invoice reactivates it for the period that invoice names.\n"
                    f"{public_url(reverse('portal:invoices'))}"
                ),
            )
        lapsed.append(subscription)
    return lapsed


def subscription_end(*, subscription: Subscription, reason: str) -> Subscription:
    """The system ends an active subscription's cover (a cancelled one whose paid period
    is over, see ``subscriptions_end_cancelled``)."""
    return apply_transition(subscription, "end", actor=None, reason=reason)


def subscriptions_end_cancelled(*, today: date) -> list[Subscription]:
    """End every cancelled subscription whose paid period is over (its ``period_end`` is
    today or earlier); the customer is told that cover has ended."""
    ended = []
    for subscription in Subscription.objects.filter(
        state=SubscriptionState.ACTIVE, cancelled_at__isnull=False, period_end__lte=today
    ).select_related("licence__customer", "licence__product"):
        assert subscription.last_covered_day is not None
        with transaction.atomic():
            subscription_end(
                subscription=subscription,
                reason=f"cancelled; cover ended after {subscription.last_covered_day}",
            )
            notification_queue(
                organisation=subscription.licence.customer,
                kind=Notification.Kind.SUBSCRIPTION_CANCELLED,
                subject=f"Escrow cover for {subscription.licence.product.name} has ended",
                body=(
                    f"As cancelled, your escrow subscription for "
                    f"{subscription.licence.product.name} ended after "
                    f"{_day(subscription.last_covered_day)}. You can subscribe again at any "
                    f"time: {public_url(reverse('portal:dashboard'))}"
                ),
            )
        ended.append(subscription)
    return ended
