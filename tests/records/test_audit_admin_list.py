"""The audit log's admin list: newest first, searchable by action, who acted and the
object, filtered by action, object type and date, a page at a time, at a number of
queries that does not grow with the log."""

from __future__ import annotations

import html
import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from accounts.models import User
from records.admin import AuditEntryAdmin
from records.models import AuditEntry
from records.services.audit import audit_chain_verify, audit_record
from tests.conftest import signed_in_client

URL = reverse("admin:records_auditentry_changelist")


@pytest.fixture(autouse=True)
def _fresh_filter_choices() -> None:
    cache.clear()  # the action and object type choices are kept a few minutes


def log(count: int, actor: User | None = None, action: str = "deposit.verify") -> None:
    for n in range(count):
        audit_record(action=action, actor=actor, details={"n": n}, from_state="a", to_state="b")


def sequences(page: str) -> list[int]:
    """The sequence numbers of the rows shown, in order (the first column links the row)."""
    return [int(n) for n in re.findall(r'class="field-sequence"><a [^>]*>(\d+)</a>', page)]


@pytest.mark.django_db
def test_newest_first_a_page_at_a_time(staff) -> None:
    log(AuditEntryAdmin.list_per_page + 7)
    client = signed_in_client(staff)
    first = client.get(URL)
    assert first.status_code == 200
    shown = sequences(first.content.decode())
    newest = AuditEntry.objects.order_by("-sequence").first()
    assert newest is not None
    assert shown[0] == newest.sequence
    assert shown == sorted(shown, reverse=True)
    assert len(shown) == AuditEntryAdmin.list_per_page
    second = sequences(client.get(URL, {"p": 2}).content.decode())
    assert second and max(second) < min(shown)
    assert len(shown) + len(second) == AuditEntry.objects.count()


@pytest.mark.django_db
def test_the_list_costs_the_same_queries_at_two_sizes(staff, django_assert_max_num_queries) -> None:
    client = signed_in_client(staff)
    pages = [{}, {"q": "invoice", "action": "invoice.issue", "p": "2"}, {"object_type": "x"}]
    log(3, actor=staff, action="invoice.issue")
    client.get(URL)  # the session's first request may touch more (last login, device)
    small = []
    for params in pages:
        with django_assert_max_num_queries(12) as queries:
            assert client.get(URL, params).status_code == 200
        small.append(len(queries.captured_queries))
    log(150, actor=staff, action="invoice.issue")
    for params, most in zip(pages, small, strict=True):
        with django_assert_max_num_queries(most):
            assert client.get(URL, params).status_code == 200

    # No count of the whole table on each page: the log's chain head numbers it.
    with django_assert_max_num_queries(small[0]) as unfiltered:
        page = client.get(URL).content.decode()
    assert not any("COUNT(" in query["sql"] for query in unfiltered.captured_queries)
    assert "153 audit entries" in page
    assert AuditEntryAdmin.show_full_result_count is False


@pytest.mark.django_db
def test_search_by_action_actor_and_object(staff, notary, product) -> None:
    audit_record(action="deposit.acknowledge", actor=notary, target=product)
    audit_record(action="token.create", actor=staff)
    audit_record(action="invoice.issue")
    client = signed_in_client(staff)

    def found(**params: str) -> set[str]:
        page = client.get(URL, params).content.decode()
        return set(re.findall(r'class="field-action">(?:<a [^>]*>)?([^<]*)<', page))

    assert found(q="acknowledge") == {"deposit.acknowledge"}
    assert found(q="notary@notaris.example") == {"deposit.acknowledge"}
    assert found(q="Deposit.Acknowledge") == {"deposit.acknowledge"}  # any case
    assert found(q="acknowledge notary") == {"deposit.acknowledge"}  # every word
    assert found(q=str(product.pk)) == {"deposit.acknowledge"}  # the object's number
    assert found(q="staff@acme.example") == {"token.create"}
    assert found(action="invoice.issue") == {"invoice.issue"}
    assert found(object_type=product._meta.label) == {"deposit.acknowledge"}
    choices = client.get(URL).content.decode()
    assert '?action=deposit.acknowledge"' in choices  # the filter offers what was logged
    assert f'?object_type={product._meta.label}"' in choices
    assert found(q="nothing-like-this") == set()


@pytest.mark.django_db
def test_filtered_by_date(staff) -> None:
    log(2)
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None
    client = signed_in_client(staff)
    # The date filter's choices: "Today", "Past 7 days", "This month", "This year".
    page = client.get(URL).content.decode()
    links = dict(
        (label, html.unescape(href))
        for href, label in re.findall(r'<a href="(\?created_at__gte=[^"]*)">([^<]*)</a>', page)
    )
    assert {"Today", "Past 7 days", "This month", "This year"} <= set(links)
    assert entry.sequence in sequences(client.get(URL + links["Today"]).content.decode())
    years_ago = {
        "created_at__gte": "2001-01-01 00:00+00:00",
        "created_at__lt": "2002-01-01 00:00+00:00",
    }
    assert sequences(client.get(URL, years_ago).content.decode()) == []


@pytest.mark.django_db
def test_the_log_stays_read_only(staff) -> None:
    log(1)
    entry = AuditEntry.objects.get()
    client = signed_in_client(staff)
    page = client.get(reverse("admin:records_auditentry_change", args=[entry.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get(reverse("admin:records_auditentry_add")).status_code == 403
    assert (
        client.get(reverse("admin:records_auditentry_delete", args=[entry.pk])).status_code == 403
    )
    assert audit_chain_verify(anchors=()).intact
