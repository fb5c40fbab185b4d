"""A subscriber sees in Chromium whether each deposit protecting them builds: the badge
says it in words on the product page, and opening it shows the summary (outcome, when,
artefacts with their SHA-256, the toolchain and the log's last lines), with no console
error and no serious accessibility problem."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import Product, User
from tests.browser.test_every_page import axe_problems
from tests.factories import make_active_subscription, make_deposit
from verification.models import BuildVerification, VerificationState

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-verification-password"
ARTEFACT_SHA256 = "5e" * 32


@pytest.fixture
def shown(licence, subscriber: User, staff: User, product: Product) -> Product:
    """A covered product with one deposit that built and one that did not."""
    subscriber.set_password(PASSWORD)
    subscriber.save(update_fields=["password"])
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    finished = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    for version, state, log in [
        ("1.0.0", VerificationState.PASSED, "Build finished: build/ledger\n"),
        ("1.1.0", VerificationState.FAILED, "curl: (6) Could not resolve host: pypi.org\n"),
    ]:
        deposit = make_deposit(product=product, version=version)
        passed = state == VerificationState.PASSED
        BuildVerification.objects.create(
            deposit_id=deposit.pk,
            product=product,
            state=state,
            recipe_source="archive",
            recipe={"command": "make", "artefacts": ["build/ledger"]},
            exit_code=0 if passed else 6,
            started_at=finished,
            finished_at=finished,
            duration_seconds=3.5,
            log_tail=log,
            artefacts=[{"path": "build/ledger", "sha256": ARTEFACT_SHA256, "size": 2048}]
            if passed
            else [],
            toolchain={"gcc": "12.2.0", "make": "4.3"},
            problem="" if passed else "The build exited with code 6.",
        )
    return product


@pytest.fixture
def page(browser: Browser, live_server: LiveServer, shown: Product) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    current = context.new_page()
    current.set_default_timeout(10_000)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error on {current.url}: {message.text}")

    current.on("console", on_console)
    current.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    current.goto(f"{live_server.url}/portal/login/")
    current.locator("input[name=username]").fill("alice@northwind.example")
    current.locator("input[name=password]").fill(PASSWORD)
    current.get_by_role("button", name="Sign in").click()
    expect(current).to_have_url(f"{live_server.url}/portal/")
    yield current
    context.close()
    assert problems == []


def test_a_subscriber_sees_the_badge_in_words_and_opens_the_summary(
    page: Page, live_server: LiveServer, shown: Product
) -> None:
    page.goto(f"{live_server.url}/portal/products/{shown.slug}/")
    verified_row = page.locator("tr", has_text="1.0.0")
    failed_row = page.locator("tr", has_text="1.1.0")
    expect(verified_row.locator("summary .verification-badge")).to_have_text("✓ Build verified")
    expect(failed_row.locator("summary .verification-badge")).to_have_text("✗ Build failed")

    summary = verified_row.locator(".verification-summary")
    expect(summary).to_be_hidden()
    verified_row.locator("summary").click()
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("20 Nov 2026 at 14:30 UTC")
    expect(summary).to_contain_text(ARTEFACT_SHA256)
    expect(summary).to_contain_text("gcc 12.2.0")
    expect(verified_row.locator("pre.verification-log")).to_contain_text(
        "Build finished: build/ledger"
    )

    failed_row.locator("summary").click()
    expect(failed_row.locator(".verification-summary")).to_contain_text(
        "The build exited with code 6."
    )
    expect(failed_row.locator("pre.verification-log")).to_contain_text(
        "Could not resolve host: pypi.org"
    )

    # Open, the page still fits its window and has no serious accessibility problem.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280
    assert axe_problems(page) == []


def test_the_dashboard_shows_the_badge_too(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/portal/")
    badges = page.locator("td[data-label=Build] summary .verification-badge")
    expect(badges).to_have_count(2)
    expect(badges.filter(has_text="Build verified")).to_have_count(1)


def test_the_open_summary_fits_a_phone(page: Page, live_server: LiveServer, shown: Product) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/portal/products/{shown.slug}/")
    for summary in page.locator("td[data-label=Build] summary").all():
        summary.click()
    expect(page.locator(".verification-summary").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
