"""Browser smoke test: each door signs its user in through the real login form
and shows a dashboard with the demo data, without console errors or CSP
violations. The screenshots double as the README's (``make screenshots``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from pytest_django.live_server_helper import LiveServer

from escrow.demo import DEMO_TOTP_DEVICE, DemoResult, demo_load

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-smoke-password"
CUSTOMER = "alice@northwind.example"
NOTARY = "notary@notaris.example"
STAFF = "staff@acme.example"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WRONG_CODE_ERROR = "That code is not valid. Codes change every 30 seconds."


@dataclass
class Journey:
    """One fresh browser context and its page, with every console error and
    uncaught page error (CSP violations arrive as console errors) it saw."""

    page: Page
    base_url: str
    problems: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture
def demo(tmp_path: Path) -> DemoResult:
    return demo_load(password=PASSWORD, identity_path=tmp_path / "notary-identity.txt")


@pytest.fixture
def journey(browser: Browser, live_server: LiveServer, demo: DemoResult) -> Iterator[Journey]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    current = Journey(page=page, base_url=live_server.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            current.problems.append(f"console error on {page.url}: {message.text}")

    page.on("console", on_console)
    page.on(
        "pageerror", lambda error: current.problems.append(f"page error on {page.url}: {error}")
    )
    yield current
    context.close()


@pytest.fixture
def screenshot_to(tmp_path: Path) -> Callable[[Page, str], Path]:
    directory = Path(os.environ.get("ESCROW_SCREENSHOT_DIR") or tmp_path)

    def take(page: Page, name: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def sign_in(journey: Journey, path: str, email: str, button: str) -> None:
    page = journey.page
    page.goto(journey.url(path))
    page.locator("input[name=username]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name=button).click()


def assert_real_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes"


def table_rows(page: Page, heading: str) -> list[list[str]]:
    """The cell texts of each body row of the table in the section headed ``heading``."""
    section = page.locator("section").filter(has=page.get_by_role("heading", name=heading))
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in section.locator("table").first.locator("tbody tr").all()
    ]


def notary_device() -> TOTPDevice:
    return TOTPDevice.objects.get(user__email=NOTARY, name=DEMO_TOTP_DEVICE)


def current_code(device: TOTPDevice, *, offset: int = 0) -> str:
    """The code an authenticator app shows now (``offset`` steps away from now)."""
    code = totp(
        device.bin_key,
        step=device.step,
        t0=device.t0,
        digits=device.digits,
        drift=device.drift + offset,
    )
    return f"{code:0{device.digits}d}"


def wait_out_throttling(device: TOTPDevice) -> None:
    """django-otp locks the device for 1, 2, 4 ... seconds after each failure;
    a real user waits too, so the test waits rather than resetting the counter."""
    device.refresh_from_db()
    allowed, info = device.verify_is_allowed()
    if not allowed and info and info.get("locked_until"):
        remaining = (info["locked_until"] - timezone.now()).total_seconds()
        time.sleep(max(remaining, 0) + 0.2)


def test_a_customer_signs_in_and_sees_its_dashboard(
    journey: Journey, screenshot_to: Callable[[Page, str], Path]
) -> None:
    page = journey.page
    sign_in(journey, "/portal/login/", CUSTOMER, "Sign in")

    expect(page).to_have_url(journey.url("/portal/"))
    page.wait_for_load_state("load")
    expect(page.get_by_role("heading", level=1)).to_have_text("Northwind Logistics B.V.")
    expect(page.locator(".topbar .who")).to_contain_text("Alice Jansen")
    subscriptions = table_rows(page, "Escrow subscriptions")
    assert sorted((row[0], row[3].split(" · ")[0]) for row in subscriptions) == [
        ("Fleet Planner", "Not subscribed"),
        ("Ledger Pro", "Active"),
    ]
    deposits = [
        ["Ledger Pro", *row] for row in table_rows(page, "Ledger Pro: deposits protecting you")
    ]
    # Only products with an active escrow subscription: Fleet Planner is licensed, not covered.
    assert sorted((row[0], row[1]) for row in deposits) == [
        ("Ledger Pro", "1.0.0"),
        ("Ledger Pro", "1.1.0"),
    ]
    html = page.content()
    assert "Fleet Planner: deposits" not in html
    assert "Contoso" not in html
    assert "contoso.example" not in html

    assert_real_png(screenshot_to(page, "customer-dashboard.png"))
    assert journey.problems == []


def test_a_notary_signs_in_with_a_second_factor_and_sees_the_register(
    journey: Journey, screenshot_to: Callable[[Page, str], Path]
) -> None:
    page = journey.page
    sign_in(journey, "/notary/login/", NOTARY, "Sign in")
    expect(page).to_have_url(journey.url("/notary/verify/"))
    code_field = page.locator("input[name=token]")
    verify = page.get_by_role("button", name="Verify")

    # A wrong code first: one digit of the valid code changed, and not accepted by
    # the device's tolerance window either (the codes of the neighbouring steps).
    device = notary_device()
    acceptable = {current_code(device, offset=step) for step in (-1, 0, 1)}
    valid = current_code(device)
    wrong = next(
        candidate for digit in "1234567890" if (candidate := valid[:-1] + digit) not in acceptable
    )
    code_field.fill(wrong)
    verify.click()
    expect(page.get_by_role("alert")).to_contain_text(WRONG_CODE_ERROR)
    expect(page).to_have_url(journey.url("/notary/verify/"))
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    page.goto(journey.url("/notary/"))
    expect(page).to_have_url(journey.url("/notary/verify/"))
    expect(page.get_by_role("heading", name="Second factor")).to_be_visible()

    # The right code, computed just before it is typed. With the default tolerance
    # of one step a rollover cannot reject it; one retry covers a slow machine.
    for attempt in range(2):
        wait_out_throttling(device)
        page.locator("input[name=token]").fill(current_code(notary_device()))
        with page.expect_navigation():
            page.get_by_role("button", name="Verify").click()
        if page.url == journey.url("/notary/"):
            break
        assert attempt == 0, f"the current code was refused twice; page at {page.url}"

    expect(page).to_have_url(journey.url("/notary/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Notary register")
    expect(page.locator(".topbar .who")).to_contain_text("Mr. N. Otaris")
    # The demo's two claims wait for the notary: one uncontested, one the vendor contested.
    open_claims = table_rows(page, "Open release claims")
    assert sorted((row[2], row[3], row[5]) for row in open_claims) == [
        ("Fabrikam Retail N.V.", "Ledger Pro", "Under review by the notary"),
        ("Northwind Logistics B.V.", "Ledger Pro", "Under review by the notary"),
    ]
    register = table_rows(page, "Deposit register")
    assert sorted((row[0], row[1]) for row in register) == [
        ("Fleet Planner", "2.3.1"),
        ("Ledger Pro", "1.0.0"),
        ("Ledger Pro", "1.1.0"),
        ("Payroll Classic", "3.2.0"),
    ]

    assert_real_png(screenshot_to(page, "notary-dashboard.png"))
    assert journey.problems == []


def test_a_staff_member_signs_in_to_the_admin(
    journey: Journey, screenshot_to: Callable[[Page, str], Path]
) -> None:
    page = journey.page
    page.goto(journey.url("/admin/login/"))
    page.locator("input[name=username]").fill(STAFF)
    page.locator("input[name=password]").fill(PASSWORD)
    # The admin asks staff for a code from their authenticator too.
    staff_device = TOTPDevice.objects.get(user__email=STAFF, name=DEMO_TOTP_DEVICE)
    page.locator("input[name=otp_token]").fill(current_code(staff_device))
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(journey.url("/admin/"))
    page.wait_for_load_state("load")
    expect(page.locator("#site-name")).to_have_text("Software Escrow — staff")
    content = page.locator("#content-main")
    for model in ("Deposits", "Audit entries", "Licence agreements", "Subscriptions"):
        expect(content.get_by_role("link", name=model, exact=True)).to_be_visible()

    assert_real_png(screenshot_to(page, "staff-dashboard.png"))
    assert journey.problems == []
