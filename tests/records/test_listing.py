"""One page of a list at a time, and money always with its currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import RequestFactory

from billing.templatetags.money import money
from records.listing import PER_PAGE, page_of


@pytest.mark.parametrize(
    ("asked", "shown"),
    [("2", 2), (None, 1), ("0", 3), ("999", 3), ("last", 1), ("x'; drop table", 1)],
)
def test_a_page_out_of_range_or_garbled_gives_the_nearest_real_page(
    asked: str | None, shown: int
) -> None:
    query = {} if asked is None else {"page": asked}
    request = RequestFactory().get("/list/", query)
    page = page_of(request, list(range(2 * PER_PAGE + 1)))
    assert page.number == shown
    assert len(page.object_list) == (1 if shown == 3 else PER_PAGE)


def test_page_links_keep_the_search_and_filters() -> None:
    request = RequestFactory().get("/list/", {"q": "acme & co", "state": "open", "page": "2"})
    page = page_of(request, list(range(3 * PER_PAGE)))
    html = Template('{% include "pagination.html" %}').render(
        Context({"request": request, "page": page})
    )
    assert "Page 2 of 3 (75 in all)" in html
    assert 'href="?q=acme+%26+co&amp;state=open&amp;page=1"' in html
    assert 'href="?q=acme+%26+co&amp;state=open&amp;page=3"' in html


def test_a_single_page_draws_no_links() -> None:
    request = RequestFactory().get("/list/")
    html = Template('{% include "pagination.html" %}').render(
        Context({"request": request, "page": page_of(request, [1, 2])})
    )
    assert html.strip() == ""


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (Decimal("1234.5"), "EUR", "EUR 1,234.50"),
        (Decimal("-12"), "USD", "USD -12.00"),
        ("250", "GBP", "GBP 250.00"),
        (Decimal("0.005"), "EUR", "EUR 0.01"),
        (None, "EUR", "—"),
    ],
)
def test_money_is_shown_with_its_currency(amount: object, currency: str, shown: str) -> None:
    assert money(amount, currency) == shown
