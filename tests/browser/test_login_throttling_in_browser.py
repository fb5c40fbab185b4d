"""Browser journey: someone who types a wrong password too often at the customer
portal sees the lock-out page, saying how long to wait, and then the right
password does not get in either. Same Chromium set-up as the dashboards test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WRONG_PASSWORD_ERROR = "Please enter a correct email and password."
# Chromium reports any 4xx page load on the console; the lock-out page is a 429 on purpose.
EXPECTED_CONSOLE = "the server responded with a status of 429"


@pytest.fixture
def customer(transactional_db: None) -> User:
    return UserFactory(email="alice@northwind.example")


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def submit(page: Page, email: str, password: str) -> None:
    page.locator("input[name=username]").fill(email)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def test_too_many_wrong_passwords_lock_the_portal_door(
    page: Page, live_server: LiveServer, customer: User
) -> None:
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and EXPECTED_CONSOLE not in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    login = f"{live_server.url}/portal/login/"
    limit = settings.AXES_FAILURE_LIMIT
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    page.goto(login)

    for _ in range(limit - 1):
        submit(page, customer.email, "not-the-password")
        expect(page.get_by_role("alert")).to_contain_text(WRONG_PASSWORD_ERROR)
    submit(page, customer.email, "still-not-the-password")

    expect(page.get_by_role("heading", level=1)).to_have_text("Too many sign-in attempts")
    expect(page.get_by_role("alert")).to_contain_text(f"Wait {minutes} minutes, then try again.")

    # Back at the form, the right password does not get in: the same page again.
    page.get_by_role("link", name="Back to sign-in").click()
    expect(page).to_have_url(login)
    submit(page, customer.email, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Too many sign-in attempts")
    page.goto(f"{live_server.url}/portal/")
    expect(page).to_have_url(f"{login}?next=/portal/")
    assert problems == []
