from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from accounts import roles
from billing.fees import escrow_fee
from billing.models.licences import LicenceAgreement


def default_fee_rate() -> Decimal:
    return settings.ESCROW_FEE_RATE


class SubscriptionState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
    ACTIVE = "active", "Active"
    LAPSED = "lapsed", "Lapsed"
    CANCELLED = "cancelled", "Cancelled"


# A licence has at most one subscription that is not finished.
OPEN_STATES = [
    SubscriptionState.REQUESTED,
    SubscriptionState.AWAITING_PAYMENT,
    SubscriptionState.ACTIVE,
]


class Subscription(ConcurrentTransitionMixin, models.Model):
    """A licence's place on the escrow list; the fee is ``fee_rate`` of the licence fee."""

    licence = models.ForeignKey(
        LicenceAgreement, on_delete=models.PROTECT, related_name="subscriptions"
    )
    fee_rate = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=default_fee_rate,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text="Share of the annual licence fee, e.g. 0.0500 for 5%.",
    )
    state = FSMField(
        max_length=20,
        choices=SubscriptionState.choices,
        default=SubscriptionState.REQUESTED,
        protected=True,
    )
    terms_accepted_at = models.DateTimeField(null=True, blank=True)
    terms_accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(
        null=True, blank=True, help_text="The paid period runs until the day before this date."
    )
    cancelled_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When it was cancelled. An active subscription stays active (covered) "
        "until its period ends, is not renewed, and then ends.",
    )
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["licence"],
                condition=models.Q(state__in=OPEN_STATES),
                name="one_open_subscription_per_licence",
            ),
        ]

    def __str__(self) -> str:
        return f"Escrow subscription for {self.licence}"

    @property
    def fee(self) -> Decimal:
        """This year's escrow fee, from the licence's current annual fee."""
        return escrow_fee(annual_licence_fee=self.licence.annual_fee, rate=self.fee_rate)

    @property
    def is_ending(self) -> bool:
        """Cancelled, but covered until its paid period ends (and never renewed)."""
        return self.state == SubscriptionState.ACTIVE and self.cancelled_at is not None

    @property
    def last_covered_day(self) -> date | None:
        """The last day of the paid period (``period_end`` is the first day after it)."""
        return self.period_end - timedelta(days=1) if self.period_end else None

    @transition(
        field=state,
        source=SubscriptionState.REQUESTED,
        target=SubscriptionState.AWAITING_PAYMENT,
        permission=roles.licence_holder_or_staff,
    )
    def await_payment(self, *, accepted_at: datetime, accepted_by: Any) -> None:
        self.terms_accepted_at = accepted_at
        self.terms_accepted_by = accepted_by

    @transition(
        field=state,
        source=SubscriptionState.AWAITING_PAYMENT,
        target=SubscriptionState.ACTIVE,
        permission=roles.staff_or_system,
    )
    def activate(self, *, period_start: date | None = None, period_end: date | None = None) -> None:
        self.period_start = period_start
        self.period_end = period_end

    @transition(
        field=state,
        source=SubscriptionState.ACTIVE,
        target=SubscriptionState.ACTIVE,
        permission=roles.staff_or_system,
    )
    def renew(self, *, period_start: date | None = None, period_end: date | None = None) -> None:
        self.period_start = period_start
        self.period_end = period_end

    @transition(
        field=state,
        source=SubscriptionState.LAPSED,
        target=SubscriptionState.ACTIVE,
        permission=roles.staff_or_system,
    )
    def reactivate(self, *, period_start: date, period_end: date) -> None:
        """A late payment of the invoice it lapsed over: covered for that invoice's period."""
        self.period_start = period_start
        self.period_end = period_end

    @transition(
        field=state,
        source=[SubscriptionState.AWAITING_PAYMENT, SubscriptionState.ACTIVE],
        target=SubscriptionState.LAPSED,
        permission=roles.system_only,
    )
    def lapse(self) -> None:
        pass

    @transition(
        field=state,
        source=[*OPEN_STATES, SubscriptionState.LAPSED],
        target=SubscriptionState.CANCELLED,
        permission=roles.licence_holder_or_staff,
    )
    def cancel(self, *, cancelled_at: datetime, cancelled_by: Any) -> None:
        if self.cancelled_at is None:
            self.cancelled_at = cancelled_at
            self.cancelled_by = cancelled_by

    @transition(
        field=state,
        source=SubscriptionState.ACTIVE,
        target=SubscriptionState.CANCELLED,
        permission=roles.system_only,
    )
    def end(self) -> None:
        """A cancelled subscription's paid period is over."""
