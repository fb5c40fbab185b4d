"""Lists people read: one page at a time, newest or most urgent first.

Every list page in the portals shows ``PER_PAGE`` rows through ``page_of``, so a
page costs the same two queries (a count and a slice) whatever the number of
rows; ``templates/pagination.html`` draws the links and keeps the search and
filters of the request in them."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest

PER_PAGE = 25


def page_of(request: HttpRequest, rows: Any, per_page: int = PER_PAGE) -> Page:
    """The page the request asks for (``?page=N``); a page out of range or not a
    number gives the nearest real page rather than an error."""
    return Paginator(rows, per_page).get_page(request.GET.get("page"))
