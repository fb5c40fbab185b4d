from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from billing import services as service
from billing.models import Subscription
from records.services.transitions import apply_transition
from tests.factories import make_subscription
from tests.state_machines import Machine, assert_allowed, assert_refused, declared_table, snapshot

# From the design brief: requested -> awaiting_payment -> active -> (renewed
# yearly) -> lapsed (unpaid past grace) / cancelled. An unpaid first invoice
# lapses too; a customer may cancel until the subscription has ended. A late
# payment reactivates a lapsed subscription, and a subscription cancelled while
# active ends (by the system) when its paid period is over (docs/billing.md).
TABLE = {
    "await_payment": {"requested": "awaiting_payment"},
    "activate": {"awaiting_payment": "active"},
    "renew": {"active": "active"},
    "reactivate": {"lapsed": "active"},
    "lapse": {"awaiting_payment": "lapsed", "active": "lapsed"},
    "cancel": {
        state: "cancelled" for state in ["requested", "awaiting_payment", "active", "lapsed"]
    },
    "end": {"active": "cancelled"},
}
A_YEAR = (date(2027, 1, 1), date(2028, 1, 1))

SUBSCRIPTIONS = Machine(
    model=Subscription,
    table=TABLE,
    paths={
        "requested": [],
        "awaiting_payment": ["await_payment"],
        "active": ["await_payment", "activate"],
        "lapsed": ["await_payment", "activate", "lapse"],
        "cancelled": ["cancel"],
    },
    create=lambda people: make_subscription(licence=people.licence, actor=people.subscriber),
    fire={
        "await_payment": lambda s, p: service.subscription_await_payment(
            subscription=s, actor=p.subscriber
        ),
        "activate": lambda s, p: service.subscription_activate(subscription=s, actor=p.staff),
        "renew": lambda s, p: service.subscription_renew(subscription=s, actor=None),
        "reactivate": lambda s, p: service.subscription_reactivate(
            subscription=s, actor=None, period=A_YEAR
        ),
        "lapse": lambda s, p: service.subscription_lapse(subscription=s, reason="unpaid"),
        "cancel": lambda s, p: service.subscription_cancel(subscription=s, actor=p.subscriber),
        "end": lambda s, p: service.subscription_end(subscription=s, reason="period over"),
    },
)


@pytest.fixture
def people(licence, subscriber, other_customer, staff, notary) -> SimpleNamespace:
    return SimpleNamespace(
        licence=licence,
        subscriber=subscriber,
        other_customer=other_customer,
        staff=staff,
        notary=notary,
    )


def test_the_model_declares_exactly_the_transitions_of_the_brief() -> None:
    assert declared_table(Subscription) == TABLE


@pytest.mark.parametrize(("source", "name"), SUBSCRIPTIONS.allowed_pairs())
def test_each_allowed_transition_moves_and_is_audited(source, name, people) -> None:
    assert_allowed(SUBSCRIPTIONS, source, name, people)


@pytest.mark.parametrize(("state", "name"), SUBSCRIPTIONS.refused_pairs())
def test_every_other_transition_is_refused_and_changes_nothing(state, name, people) -> None:
    assert_refused(SUBSCRIPTIONS, state, name, people)


@pytest.mark.parametrize("who", ["subscriber", "other_customer", "notary"])
def test_only_staff_or_the_system_activate(who, people) -> None:
    subscription = SUBSCRIPTIONS.reach("awaiting_payment", people)
    before = snapshot(subscription)
    with pytest.raises(PermissionDenied):
        service.subscription_activate(subscription=subscription, actor=getattr(people, who))
    assert snapshot(subscription) == before


def test_another_organisation_cannot_subscribe_or_cancel_the_licence(people) -> None:
    with pytest.raises(PermissionDenied):
        service.subscription_request(licence=people.licence, actor=people.other_customer)
    subscription = SUBSCRIPTIONS.reach("active", people)
    before = snapshot(subscription)
    with pytest.raises(PermissionDenied):
        service.subscription_cancel(subscription=subscription, actor=people.other_customer)
    assert snapshot(subscription) == before
    assert Subscription.objects.count() == 1


def test_a_licence_has_one_open_subscription_at_a_time(people) -> None:
    SUBSCRIPTIONS.reach("active", people)
    with pytest.raises(ValidationError, match="already has an open escrow subscription"):
        service.subscription_request(licence=people.licence, actor=people.subscriber)
    assert Subscription.objects.count() == 1


@pytest.mark.parametrize("who", ["subscriber", "other_customer", "notary"])
def test_only_staff_or_the_system_reactivate(who, people) -> None:
    subscription = SUBSCRIPTIONS.reach("lapsed", people)
    before = snapshot(subscription)
    with pytest.raises(PermissionDenied):
        service.subscription_reactivate(
            subscription=subscription, actor=getattr(people, who), period=A_YEAR
        )
    assert snapshot(subscription) == before


@pytest.mark.parametrize("who", ["subscriber", "staff"])
def test_only_the_system_ends_a_subscription_when_its_period_is_over(who, people) -> None:
    subscription = SUBSCRIPTIONS.reach("active", people)
    before = snapshot(subscription)
    with pytest.raises(PermissionDenied):
        apply_transition(subscription, "end", actor=getattr(people, who))
    assert snapshot(subscription) == before
