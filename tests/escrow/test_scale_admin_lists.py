"""The staff admin's deposit and claim lists at scale: a page at a time, a number of
queries that does not grow with the table, filters by state, product, organisation
and date, and search."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from escrow.admin import DepositAdmin, ReleaseClaimAdmin
from escrow.models import Deposit, ReleaseClaim
from tests.conftest import signed_in_client

DEPOSITS = reverse("admin:escrow_deposit_changelist")
CLAIMS = reverse("admin:escrow_releaseclaim_changelist")


def deposits(product, count: int, start: int = 0) -> None:
    Deposit.objects.bulk_create(
        Deposit(
            product=product,
            version=f"1.{n}.0",
            archive_sha256=f"{n:064x}",
            state="acknowledged" if n % 2 else "failed",
            manifest={"files": n},
        )
        for n in range(start, start + count)
    )


def claims(subscriber, product, count: int) -> None:
    ReleaseClaim.objects.bulk_create(
        ReleaseClaim(
            claimant=subscriber.organisation,
            filed_by=subscriber,
            product=product,
            condition="insolvency",
            statement=f"Claim {n}",
            state="withdrawn" if n % 2 else "rejected",
        )
        for n in range(count)
    )


def rows(page: bytes) -> int:
    return len(re.findall(rb'<input type="checkbox" name="_selected_action"', page))


@pytest.mark.django_db
def test_deposit_list_queries_do_not_grow(staff, product, django_assert_max_num_queries) -> None:
    client = signed_in_client(staff)
    deposits(product, 3)
    client.get(DEPOSITS)
    pages = [{}, {"state__exact": "failed"}, {"q": "1.1"}, {"product__id__exact": product.pk}]
    small = []
    for params in pages:
        with django_assert_max_num_queries(12) as queries:
            assert client.get(DEPOSITS, params).status_code == 200
        small.append(len(queries.captured_queries))
    deposits(product, 120, start=3)
    for params, most in zip(pages, small, strict=True):
        with django_assert_max_num_queries(most):
            page = client.get(DEPOSITS, params)
        assert page.status_code == 200
    assert rows(client.get(DEPOSITS).content) == DepositAdmin.list_per_page
    failed = client.get(DEPOSITS, {"state__exact": "failed"}).content
    states = re.findall(rb'<td class="field-state">([^<]*)</td>', failed)
    assert states and set(states) == {b"Failed"}


@pytest.mark.django_db
def test_claim_list_queries_do_not_grow(
    staff, subscriber, product, django_assert_max_num_queries
) -> None:
    client = signed_in_client(staff)
    claims(subscriber, product, 3)
    client.get(CLAIMS)
    organisation = subscriber.organisation.pk
    pages = [{}, {"state__exact": "rejected"}, {"claimant__id__exact": organisation}, {"q": "x"}]
    small = []
    for params in pages:
        with django_assert_max_num_queries(14) as queries:
            assert client.get(CLAIMS, params).status_code == 200
        small.append(len(queries.captured_queries))
    claims(subscriber, product, 120)
    for params, most in zip(pages, small, strict=True):
        with django_assert_max_num_queries(most):
            assert client.get(CLAIMS, params).status_code == 200
    assert rows(client.get(CLAIMS).content) == ReleaseClaimAdmin.list_per_page
    # Found by the organisation's name; the date filter offers the usual choices.
    named = client.get(CLAIMS, {"q": subscriber.organisation.name[:8]}).content
    assert rows(named) == ReleaseClaimAdmin.list_per_page
    assert b"Past 7 days" in named
    assert rows(client.get(CLAIMS, {"q": "Nobody Ltd"}).content) == 0
