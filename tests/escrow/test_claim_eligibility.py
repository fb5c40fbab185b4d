"""Who may claim a release: an organisation with an active escrow subscription for the
product, once a deposit of it has been acknowledged by the notary."""

from __future__ import annotations

import pytest

from billing.services import subscription_await_payment, subscription_cancel, subscription_lapse
from escrow.services.claims import claim_eligibility_problem
from tests.factories import (
    LicenceFactory,
    ProductFactory,
    make_acknowledged_deposit,
    make_active_subscription,
    make_deposit,
    make_subscription,
)

NO_SUBSCRIPTION = (
    "Northwind Logistics B.V. has no active escrow subscription for Ledger Pro: "
    "only subscribers with a paid, active subscription may claim a release."
)
NO_DEPOSIT = (
    "No deposit of Ledger Pro has been acknowledged by the notary yet, so "
    "there is nothing that could be released."
)


@pytest.fixture
def acknowledged(product, notary):
    return make_acknowledged_deposit(product=product, notary=notary)


def problem_of(organisation, product) -> str:
    return claim_eligibility_problem(organisation=organisation, product=product)


def test_an_active_subscriber_with_an_acknowledged_deposit_may_claim(
    licence, subscriber, staff, acknowledged, organisation_a, product
) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    assert problem_of(organisation_a, product) == ""


def test_without_any_subscription_the_problem_names_the_organisation_and_product(
    licence, acknowledged, organisation_a, product
) -> None:
    assert problem_of(organisation_a, product) == NO_SUBSCRIPTION


@pytest.mark.parametrize("ended", ["lapsed", "cancelled"])
def test_a_lapsed_or_cancelled_subscription_gives_no_right(
    ended, licence, subscriber, staff, acknowledged, organisation_a, product
) -> None:
    subscription = make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    assert problem_of(organisation_a, product) == ""
    if ended == "lapsed":
        subscription_lapse(subscription=subscription, reason="invoice unpaid past grace")
    else:
        subscription_cancel(subscription=subscription, actor=subscriber, reason="not needed")
    assert problem_of(organisation_a, product) == NO_SUBSCRIPTION


def test_a_subscription_not_yet_paid_gives_no_right(
    licence, subscriber, acknowledged, organisation_a, product
) -> None:
    subscription = make_subscription(licence=licence, actor=subscriber)
    subscription_await_payment(subscription=subscription, actor=subscriber)
    assert problem_of(organisation_a, product) == NO_SUBSCRIPTION


def test_another_organisations_subscription_does_not_count(
    licence, subscriber, staff, acknowledged, organisation_b, product
) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    assert problem_of(organisation_b, product) == (
        "Contoso GmbH has no active escrow subscription for Ledger Pro: "
        "only subscribers with a paid, active subscription may claim a release."
    )


def test_a_subscription_for_another_product_does_not_count(
    vendor, organisation_a, subscriber, staff, acknowledged, product
) -> None:
    other_product = ProductFactory(vendor=vendor, name="Payroll Lite", slug="payroll-lite")
    other_licence = LicenceFactory(customer=organisation_a, product=other_product)
    make_active_subscription(licence=other_licence, actor=subscriber, staff=staff)
    # Subscribed to Payroll Lite: only its missing deposit stands in the way there.
    assert problem_of(organisation_a, other_product).startswith("No deposit of Payroll Lite")
    assert problem_of(organisation_a, product) == NO_SUBSCRIPTION


def test_without_an_acknowledged_deposit_there_is_nothing_to_release(
    licence, subscriber, staff, organisation_a, product, vendor, notary
) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    assert problem_of(organisation_a, product) == NO_DEPOSIT
    make_deposit(product=product, version="2.0.0")  # received, not acknowledged
    other_product = ProductFactory(vendor=vendor, name="Payroll Lite", slug="payroll-lite")
    make_acknowledged_deposit(product=other_product, notary=notary)  # not this product
    assert problem_of(organisation_a, product) == NO_DEPOSIT
    make_acknowledged_deposit(product=product, notary=notary, version="1.0.0")
    assert problem_of(organisation_a, product) == ""
