"""Self-service journeys in Chromium, on the demo data: an organisation admin invites a
colleague, who opens the e-mailed link, chooses a password and signs in; a customer
reads the escrow agreement and downloads it as a PDF; a customer changes the password.
E-mail delivery is the one thing replaced (Django's locmem outbox)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core import mail
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from billing.models import LicenceAgreement
from escrow.demo import demo_load
from escrow.services.people import invitation_send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-self-service-password"
CUSTOMER = "alice@northwind.example"
COLLEAGUE = "dave@northwind.example"
COLLEAGUE_PASSWORD = "Dave's own long passphrase 7"


@dataclass
class Browsing:
    browser: Browser
    base_url: str
    problems: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def new_page(self) -> Page:
        """A fresh browser context (no cookies), watched for console and page errors."""
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 800}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(10_000)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.problems.append(f"console error on {page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.pages.append(page)
        return page


@pytest.fixture
def browsing(browser: Browser, live_server: LiveServer, tmp_path: Path) -> Iterator[Browsing]:
    demo_load(password=PASSWORD, identity_path=tmp_path / "notary-identity.txt")
    current = Browsing(browser=browser, base_url=live_server.url)
    yield current
    for page in current.pages:
        page.context.close()


def sign_in(browsing: Browsing, page: Page, email: str, password: str) -> None:
    page.goto(browsing.url("/portal/login/"))
    page.locator("input[name=username]").fill(email)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(browsing.url("/portal/"))


def test_an_admin_invites_a_colleague_who_joins_and_signs_in(browsing: Browsing) -> None:
    alice = browsing.new_page()
    sign_in(browsing, alice, CUSTOMER, PASSWORD)
    alice.goto(browsing.url("/portal/colleagues/"))
    expect(alice.get_by_role("heading", level=1)).to_have_text("Colleagues")
    alice.get_by_label("Colleague's e-mail address").fill(COLLEAGUE)
    alice.get_by_role("button", name="Send the invitation").click()
    expect(alice.locator(".message.success")).to_contain_text(f"Invitation sent to {COLLEAGUE}")
    expect(alice.get_by_role("heading", name="Invitations not yet accepted")).to_be_visible()
    expect(alice.locator("main")).to_contain_text(COLLEAGUE)

    [message] = [m for m in mail.outbox if COLLEAGUE in m.to]
    link = re.search(r"https?://\S+/portal/invitation/\S+/", message.body).group(0)

    dave = browsing.new_page()
    dave.goto(browsing.url(urlsplit(link).path))
    expect(dave.get_by_role("heading", level=1)).to_have_text("Your invitation")
    expect(dave.locator("main")).to_contain_text("Northwind Logistics B.V.")
    dave.get_by_label("Your name").fill("Dave Dekker")
    dave.get_by_label("Choose a password").fill(COLLEAGUE_PASSWORD)
    dave.get_by_label("The same password again").fill(COLLEAGUE_PASSWORD)
    dave.get_by_role("button", name="Create my account").click()
    expect(dave).to_have_url(browsing.url("/portal/login/"))
    expect(dave.locator(".message.success")).to_contain_text("Welcome, Dave Dekker")
    sign_in(browsing, dave, COLLEAGUE, COLLEAGUE_PASSWORD)
    expect(dave.locator(".topbar .who")).to_contain_text("Dave Dekker")

    # Dave is a user, not an admin: the list without the controls.
    dave.goto(browsing.url("/portal/colleagues/"))
    expect(dave.locator("main")).to_contain_text("Alice Jansen")
    expect(dave.get_by_role("heading", name="Invite a colleague")).to_have_count(0)

    # The link worked once.
    again = browsing.new_page()
    again.goto(browsing.url(urlsplit(link).path))
    expect(again.get_by_role("alert")).to_contain_text("This invitation was already used")

    # Alice sees Dave, and removes him: he can no longer sign in.
    alice.goto(browsing.url("/portal/colleagues/"))
    alice.get_by_role("button", name="Remove Dave Dekker").click()
    expect(alice.locator(".message.success")).to_contain_text("Dave Dekker is removed")
    assert not User.objects.get(email=COLLEAGUE).is_active
    assert browsing.problems == []


def test_a_customer_reads_and_downloads_the_agreement(browsing: Browsing) -> None:
    page = browsing.new_page()
    sign_in(browsing, page, CUSTOMER, PASSWORD)
    page.goto(browsing.url("/portal/agreement/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("The escrow agreement")
    expect(
        page.get_by_role("heading", name="Software Escrow Agreement, version 1 (current)")
    ).to_be_visible()
    expect(
        page.get_by_role("heading", name="3. What you may do with a released deposit")
    ).to_be_visible()
    # The demo's subscriptions accepted version 1 for Northwind.
    accepted = page.locator("section").filter(
        has=page.get_by_role("heading", name="Accepted by Northwind Logistics B.V.")
    )
    expect(accepted.locator("tbody tr").first).to_contain_text("Alice Jansen")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download version 1 as a PDF").click()
    download = download_info.value
    assert download.suggested_filename == "escrow-agreement-version-1.pdf"
    assert Path(download.path()).read_bytes().startswith(b"%PDF")
    assert browsing.problems == []


def test_a_customer_changes_the_password_from_the_account_page(browsing: Browsing) -> None:
    page = browsing.new_page()
    sign_in(browsing, page, CUSTOMER, PASSWORD)
    page.goto(browsing.url("/portal/account/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.get_by_label("E-mail address", exact=True)).to_have_value(CUSTOMER)
    page.get_by_role("link", name="Change your password").click()
    new_password = "a fresh and rather long one 2026"
    page.locator("input[name=old_password]").fill(PASSWORD)
    page.locator("input[name=new_password1]").fill(new_password)
    page.locator("input[name=new_password2]").fill(new_password)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(browsing.url("/portal/password/change/done/"))
    page.get_by_role("button", name="Sign out").click()

    fresh = browsing.new_page()
    fresh.goto(browsing.url("/portal/login/"))
    fresh.locator("input[name=username]").fill(CUSTOMER)
    fresh.locator("input[name=password]").fill(PASSWORD)
    fresh.get_by_role("button", name="Sign in").click()
    expect(fresh).to_have_url(browsing.url("/portal/login/"))
    sign_in(browsing, fresh, CUSTOMER, new_password)
    assert browsing.problems == []


def layout_and_axe_problems(page: Page) -> list[str]:
    """Wider than a phone's window, or axe-core's serious and critical violations."""
    problems = []
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        wide, window = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if wide > window:
            problems.append(f"{page.url} at {width} px is {wide} px wide")
        for violation in Axe().run(page).response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [node["target"] for node in violation["nodes"][:3]]
                problems.append(f"{page.url} at {width} px: axe {violation['id']} {targets}")
    return problems


def test_the_self_service_pages_fit_a_phone_and_pass_axe(browsing: Browsing) -> None:
    alice_user = User.objects.get(email=CUSTOMER)
    invitation_send(actor=alice_user, email=COLLEAGUE)
    [message] = [m for m in mail.outbox if COLLEAGUE in m.to]
    invitation_path = urlsplit(
        re.search(r"https?://\S+/portal/invitation/\S+/", message.body).group(0)
    ).path
    unsubscribed = (
        LicenceAgreement.objects.filter(customer=alice_user.organisation)
        .exclude(subscriptions__isnull=False)
        .first()
    )
    page = browsing.new_page()
    page.goto(browsing.url(invitation_path))
    problems = layout_and_axe_problems(page)
    page.goto(browsing.url("/portal/invitation/garbled-token/"))
    problems += layout_and_axe_problems(page)
    sign_in(browsing, page, CUSTOMER, PASSWORD)
    assert unsubscribed is not None  # the demo's Fleet Planner licence
    paths = [
        "/portal/account/",
        "/portal/colleagues/",
        "/portal/agreement/",
        f"/portal/licences/{unsubscribed.pk}/subscribe/",
    ]
    for path in paths:
        page.goto(browsing.url(path))
        problems += layout_and_axe_problems(page)
    assert problems == []
    assert browsing.problems == []
