"""Staff at month-end (issue 14, "What to build" 6): records that only services change
are shown on read-only admin pages without Save or Delete, and deposits link their
certificate once there is one."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from escrow.models import Backup, DepositToken, ReleaseClaim, SealRecipientChange
from escrow.services.deposits import deposit_retry
from escrow.services.tokens import token_create
from tests.billing.lifecycle import at, subscribe
from tests.conftest import signed_in_client
from tests.factories import make_acknowledged_deposit, make_deposit

EDIT_CONTROLS = ('name="_save"', 'name="_continue"', 'name="_addanother"', "deletelink")


def assert_read_only(html: str) -> None:
    for control in EDIT_CONTROLS:
        assert control not in html, control


def test_a_deposit_page_is_read_only_and_links_its_certificate(product, notary, staff) -> None:
    stored = make_acknowledged_deposit(product=product, notary=notary, version="2.0.0")
    received = make_deposit(product=product, version="2.0.1")
    client = signed_in_client(staff)
    listing = client.get("/admin/escrow/deposit/").content.decode()
    link = f'href="/deposits/{stored.pk}/certificate/"'
    assert link in listing
    assert f'href="/deposits/{received.pk}/certificate/"' not in listing
    page = client.get(f"/admin/escrow/deposit/{stored.pk}/change/").content.decode()
    assert_read_only(page)
    assert link in page
    download = client.get(f"/deposits/{stored.pk}/certificate/")
    assert download.status_code == 302 and download["Location"].startswith("/files/certificate/")


def test_the_retry_action_still_works_on_the_read_only_deposit_list(product, staff) -> None:
    deposit = make_deposit(product=product)
    response = signed_in_client(staff).post(
        "/admin/escrow/deposit/",
        {"action": deposit_retry.__name__, "_selected_action": [deposit.pk]},
        follow=True,
    )
    shown = " ".join(str(message) for message in response.context["messages"])
    assert "only possible from: failed" in shown  # the action ran, and refused by name


def test_a_subscription_page_is_read_only(licence, subscriber, staff) -> None:
    with at(2027, 1, 1):
        subscription, _ = subscribe(licence, subscriber)
        page = signed_in_client(staff).get(f"/admin/billing/subscription/{subscription.pk}/change/")
    assert page.status_code == 200
    assert_read_only(page.content.decode())


@pytest.mark.parametrize(
    ("model", "can_add"),
    [(ReleaseClaim, False), (Backup, False), (DepositToken, True), (SealRecipientChange, True)],
)
def test_records_only_services_change_have_no_save_on_their_page(model, can_add, staff) -> None:
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/admin/")
    request.user = staff
    assert model_admin.has_change_permission(request) is False
    assert model_admin.has_view_permission(request) is True
    assert model_admin.has_add_permission(request) is can_add


def test_a_deposit_token_page_is_read_only(product, staff) -> None:
    issued = token_create(product=product, label="ci", expires_in_days=30, actor=staff)
    page = signed_in_client(staff).get(f"/admin/escrow/deposittoken/{issued.token.pk}/change/")
    assert page.status_code == 200
    assert_read_only(page.content.decode())
