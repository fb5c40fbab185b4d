"""The account page: a customer changes their name, and their e-mail address only with
their current password and only to an address nobody else uses; every change is audited."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from escrow.services.people import account_update
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import PASSWORD, UserFactory

URL = "/portal/account/"


def test_the_page_shows_name_email_and_the_password_change_link(subscriber) -> None:
    page = signed_in_client(subscriber).get(URL).content.decode()
    assert "<h1>Your account</h1>" in page
    assert f'value="{subscriber.full_name}"' in page
    assert 'type="email"' in page and f'value="{subscriber.email}"' in page
    assert 'href="/portal/password/change/"' in page


def test_changing_the_name_needs_no_password_and_is_audited(
    subscriber, django_capture_on_commit_callbacks
) -> None:
    client = signed_in_client(subscriber)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"full_name": "Alice  de Jong", "email": subscriber.email})
    assert not mail.outbox  # the address did not change: nobody to warn
    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.full_name == "Alice de Jong"
    entry = AuditEntry.objects.get(action="account.update")
    assert entry.actor == subscriber
    assert set(entry.details) == {"full_name"}
    assert entry.details["full_name"][1] == "Alice de Jong"


def test_changing_the_email_without_the_password_is_refused(subscriber) -> None:
    client = signed_in_client(subscriber)
    page = client.post(
        URL, {"full_name": subscriber.full_name, "email": "alice@new.example"}
    ).content.decode()
    assert "give your current password" in page
    subscriber.refresh_from_db()
    assert subscriber.email == "alice@northwind.example"
    assert not AuditEntry.objects.filter(action="account.update").exists()


def test_changing_the_email_with_a_wrong_password_is_refused(subscriber) -> None:
    with pytest.raises(ValidationError, match="not right"):
        account_update(
            user=subscriber,
            full_name=subscriber.full_name,
            email="alice@new.example",
            current_password="wrong",
        )
    subscriber.refresh_from_db()
    assert subscriber.email == "alice@northwind.example"


def test_changing_the_email_with_the_password_works_and_is_audited(
    subscriber, django_capture_on_commit_callbacks
) -> None:
    client = signed_in_client(subscriber)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            URL,
            {
                "full_name": subscriber.full_name,
                "email": "alice@new.example",
                "current_password": PASSWORD,
            },
        )
    assert response.status_code == 302
    # The old address is told, so a change that was not theirs does not go unnoticed.
    [notice] = mail.outbox
    assert notice.to == ["alice@northwind.example"]
    assert "changed from alice@northwind.example to alice@new.example" in notice.body
    subscriber.refresh_from_db()
    assert subscriber.email == "alice@new.example"
    entry = AuditEntry.objects.get(action="account.update")
    assert entry.details["email"] == ["alice@northwind.example", "alice@new.example"]
    assert "current_password" not in str(entry.details)


def test_an_email_of_another_account_is_refused_in_any_case(subscriber, other_customer) -> None:
    page = (
        signed_in_client(subscriber)
        .post(
            URL,
            {
                "full_name": subscriber.full_name,
                "email": "CAROL@contoso.example",
                "current_password": PASSWORD,
            },
        )
        .content.decode()
    )
    assert "is already used by another account" in page
    subscriber.refresh_from_db()
    assert subscriber.email == "alice@northwind.example"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"full_name": "", "email": "alice@northwind.example"}, "This field is required"),
        ({"full_name": "Alice", "email": "not-an-address"}, "Enter a valid email address"),
    ],
)
def test_bad_input_gets_a_clear_error(subscriber, data, message) -> None:
    page = signed_in_client(subscriber).post(URL, data).content.decode()
    assert message in page
    assert not AuditEntry.objects.filter(action="account.update").exists()


def test_a_blank_name_is_refused_by_the_service(subscriber) -> None:
    with pytest.raises(ValidationError, match="Give your name"):
        account_update(user=subscriber, full_name="   ", email=subscriber.email)


def test_the_page_needs_a_customer_and_a_csrf_token(subscriber, staff) -> None:
    assert signed_in_client(staff).get(URL).status_code == 403
    strict = signed_in_client(subscriber)
    strict.handler.enforce_csrf_checks = True
    response = strict.post(URL, {"full_name": "Mallory", "email": subscriber.email})
    assert response.status_code == 403
    subscriber.refresh_from_db()
    assert subscriber.full_name != "Mallory"


def test_another_user_is_untouched(subscriber) -> None:
    colleague = UserFactory(organisation=subscriber.organisation, email="bob@northwind.example")
    signed_in_client(subscriber).post(URL, {"full_name": "Alice", "email": subscriber.email})
    colleague.refresh_from_db()
    assert colleague.full_name != "Alice"
