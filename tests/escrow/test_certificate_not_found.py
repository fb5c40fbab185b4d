"""A certificate someone may not see answers exactly like one that does not exist: the
URL /deposits/<id>/certificate/ does not tell which deposits there are."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import signed_in_client
from tests.factories import make_acknowledged_deposit, make_active_subscription, make_deposit


@pytest.fixture
def deposit(product, notary, notary_identity):
    return make_acknowledged_deposit(product=product, notary=notary)


def answer(client: Client, deposit_id: int) -> tuple[int, str, bytes]:
    response = client.get(f"/deposits/{deposit_id}/certificate/")
    return response.status_code, response["Content-Type"], response.content


def test_the_covered_customer_gets_a_link(deposit, licence, subscriber, staff) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    response = signed_in_client(subscriber).get(f"/deposits/{deposit.pk}/certificate/")
    assert response.status_code == 302
    assert response["Location"].startswith("/files/certificate/")


@pytest.mark.parametrize(
    "who",
    [
        "another customer (no licence)",
        "the licensee without an active subscription",
        "a notary without the second factor",
    ],
)
def test_a_certificate_the_user_may_not_see_is_not_found_like_a_missing_deposit(
    who, deposit, other_customer, subscriber, notary
) -> None:
    user: User = {
        "another customer (no licence)": other_customer,
        "the licensee without an active subscription": subscriber,
        "a notary without the second factor": notary,
    }[who]
    client: Any = signed_in_client(user, second_factor=False)
    missing = deposit.pk + 1000
    existing_answer = answer(client, deposit.pk)
    assert existing_answer[0] == 404
    assert existing_answer == answer(client, missing)


def test_a_deposit_not_yet_certifiable_is_not_found_either(product, staff) -> None:
    received = make_deposit(product=product)
    client = signed_in_client(staff)
    assert answer(client, received.pk)[0] == 404
    assert answer(client, received.pk) == answer(client, received.pk + 1000)
