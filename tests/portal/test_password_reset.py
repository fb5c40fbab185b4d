"""Customer password reset and change, through Django's own views under /portal/.

A reset link comes by e-mail, is built from ESCROW_PUBLIC_URL, works once and
expires; asking for one shows the same page whether or not the address has an
account, and sends nothing for notaries and staff. Changing a password needs the
old one."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import PASSWORD

PUBLIC_URL = "https://escrow.example.com"
NEW_PASSWORD = "a new and rather long passphrase 7"
LINK = re.compile(r"(https://escrow\.example\.com)(/portal/password/reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture(autouse=True)
def _public_url(settings) -> None:
    settings.ESCROW_PUBLIC_URL = PUBLIC_URL


def ask_for_a_link(email: str):
    return Client().post("/portal/password/reset/", {"email": email}, follow=True)


def link_in(mailoutbox) -> str:
    assert len(mailoutbox) == 1
    found = LINK.search(mailoutbox[0].body)
    assert found is not None, mailoutbox[0].body
    return found.group(2)


def set_password_with(link: str, password: str = NEW_PASSWORD):
    """Open the link and choose a password, as a browser would (one client)."""
    client = Client()
    opened = client.get(link, follow=True)
    if "new_password1" not in opened.content.decode():
        return opened
    return client.post(
        opened.redirect_chain[-1][0],
        {"new_password1": password, "new_password2": password},
        follow=True,
    )


def test_a_customer_gets_a_link_that_works_once(subscriber, mailoutbox) -> None:
    page = ask_for_a_link(subscriber.email.upper())  # the address, in any case
    assert page.redirect_chain[-1][0] == "/portal/password/reset/sent/"
    assert mailoutbox[0].to == [subscriber.email]
    assert "works once, within 60 minutes" in mailoutbox[0].body
    link = link_in(mailoutbox)  # built from ESCROW_PUBLIC_URL, not the request's host

    done = set_password_with(link)
    assert done.redirect_chain[-1][0] == "/portal/password/reset/done/"
    assert "Password set" in done.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.check_password(NEW_PASSWORD)
    assert AuditEntry.objects.filter(action="user.password_reset", actor=subscriber).exists()
    # The customer signs in with the new password.
    signed_in = Client().post(
        "/portal/login/", {"username": subscriber.email, "password": NEW_PASSWORD}
    )
    assert signed_in.status_code == 302

    again = set_password_with(link, password="yet another long passphrase 8")
    assert "This link does not work" in again.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.check_password(NEW_PASSWORD)


def test_a_link_expires_after_an_hour(subscriber, mailoutbox, monkeypatch) -> None:
    ask_for_a_link(subscriber.email)
    link = link_in(mailoutbox)
    later = datetime.now() + timedelta(hours=1, minutes=1)
    monkeypatch.setattr(default_token_generator, "_now", lambda: later)
    expired = set_password_with(link)
    assert "This link does not work" in expired.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.check_password(PASSWORD)


def test_a_link_works_within_a_shorter_timeout_and_not_after(
    subscriber, mailoutbox, monkeypatch, settings
) -> None:
    settings.PASSWORD_RESET_TIMEOUT = 5 * 60
    ask_for_a_link(subscriber.email)
    assert "works once, within 5 minutes" in mailoutbox[0].body
    link = link_in(mailoutbox)
    monkeypatch.setattr(
        default_token_generator, "_now", lambda: datetime.now() + timedelta(minutes=6)
    )
    assert "This link does not work" in set_password_with(link).content.decode()
    monkeypatch.setattr(
        default_token_generator, "_now", lambda: datetime.now() + timedelta(minutes=4)
    )
    assert "Password set" in set_password_with(link).content.decode()


@pytest.mark.parametrize("who", ["nobody", "notary", "staff", "inactive customer"])
def test_nothing_is_sent_for_unknown_notary_or_staff_addresses_and_the_page_is_the_same(
    who, request, subscriber, mailoutbox
) -> None:
    known = ask_for_a_link(subscriber.email)
    mailoutbox.clear()
    if who == "nobody":
        email = "nobody@nowhere.example"
    elif who == "inactive customer":
        email = subscriber.email
        subscriber.is_active = False
        subscriber.save()
    else:
        email = request.getfixturevalue(who).email
    other = ask_for_a_link(email)
    assert mailoutbox == []
    assert other.redirect_chain == known.redirect_chain
    assert other.content == known.content


def test_a_reset_token_for_a_notary_or_staff_is_refused(notary, staff) -> None:
    # Even a correctly made token opens nothing for them: they recover elsewhere.
    for user in (notary, staff):
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        page = set_password_with(f"/portal/password/reset/{uid}/{token}/")
        assert "This link does not work" in page.content.decode()
        user.refresh_from_db()
        assert user.check_password(PASSWORD)


def test_changing_the_password_needs_the_old_one(subscriber) -> None:
    client = signed_in_client(subscriber)
    wrong = client.post(
        "/portal/password/change/",
        {"old_password": "not it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 200
    assert "Your old password was entered incorrectly" in wrong.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.check_password(PASSWORD)
    assert not AuditEntry.objects.filter(action="user.password_change").exists()

    right = client.post(
        "/portal/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert right.redirect_chain[-1][0] == "/portal/password/change/done/"
    subscriber.refresh_from_db()
    assert subscriber.check_password(NEW_PASSWORD)
    assert AuditEntry.objects.filter(action="user.password_change", actor=subscriber).exists()
    assert client.get("/portal/").status_code == 200  # still signed in


def test_the_portal_links_to_both(subscriber) -> None:
    login = Client().get("/portal/login/").content.decode()
    assert 'href="/portal/password/reset/">Forgot your password?</a>' in login
    dashboard = signed_in_client(subscriber).get("/portal/").content.decode()
    assert 'href="/portal/account/">Account</a>' in dashboard
    account = signed_in_client(subscriber).get("/portal/account/").content.decode()
    assert 'href="/portal/password/change/"' in account
