"""Licences and escrow subscriptions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from billing.models import LicenceAgreement, Subscription
from billing.models.subscriptions import OPEN_STATES
from escrow import roles
from escrow.models import Organisation, Product, User
from escrow.services.audit import audit_record
from escrow.services.transitions import apply_transition


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
    """The escrow terms were accepted and the first invoice is due."""
    return apply_transition(subscription, "await_payment", actor=actor)


def subscription_activate(*, subscription: Subscription, actor: User | None) -> Subscription:
    """Payment in full arrived: the licence is on the escrow list."""
    return apply_transition(subscription, "activate", actor=actor)


def subscription_renew(*, subscription: Subscription, actor: User | None) -> Subscription:
    """A new subscription year begins."""
    return apply_transition(subscription, "renew", actor=actor)


def subscription_lapse(*, subscription: Subscription, reason: str) -> Subscription:
    """An invoice stayed unpaid past the grace period (system only)."""
    return apply_transition(subscription, "lapse", actor=None, reason=reason)


def subscription_cancel(
    *, subscription: Subscription, actor: User, reason: str = ""
) -> Subscription:
    """The customer or staff end the subscription."""
    return apply_transition(subscription, "cancel", actor=actor, reason=reason)
