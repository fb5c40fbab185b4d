"""Staff at month-end, in Chromium (issue 14, "What to build" 6): a member of staff signs
in to the admin with a second factor, finds the invoices list fitting 1280 px, records
a payment with a day and a bank reference through its form and confirmation, and
issues a credit note from an invoice's page, without console errors or CSP violations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from pytest_django.live_server_helper import LiveServer

from accounts.roles import Role
from billing.models import Invoice, Payment
from tests.billing.lifecycle import subscribe
from tests.factories import (
    PASSWORD,
    LicenceFactory,
    OrganisationFactory,
    UserFactory,
    make_acknowledged_deposit,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STAFF = "month-end@acme.example"


AXE = Axe()
#: Set while axe runs on the current document, cleared when the next one loads: axe's
#: probes apply inline styles, which the CSP refuses, and Chromium reports that in the
#: console, sometimes after axe returns. The page's own errors are those seen otherwise.
AXE_RUNNING: list[bool] = []


def axe_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    AXE_RUNNING.append(True)  # axe's own inline-styled probes trip the CSP: not the page's
    violations = AXE.run(page).response["violations"]
    return [
        f"{page.url}: axe {found['impact']} {found['id']} ({found['help']}): "
        + ", ".join(str(node["target"]) for node in found["nodes"][:3])
        for found in violations
        if found["impact"] in ("serious", "critical")
    ]


def fits_and_passes_axe(page: Page, *, phone: bool = False) -> None:
    """No sideways scrolling at 1280 px (and at 390 px with ``phone``); nothing serious
    or critical for axe-core."""
    no_horizontal_overflow(page)
    if phone:
        page.set_viewport_size({"width": 390, "height": 800})
        try:
            no_horizontal_overflow(page, lists_too=False)  # a phone scrolls a list in its box
        finally:
            page.set_viewport_size({"width": 1280, "height": 800})
    assert axe_problems(page) == []


def no_horizontal_overflow(page: Page, *, lists_too: bool = True) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} is {widths[0]} px wide in {widths[1]} px"
    if not lists_too:
        return
    # The admin scrolls a wide result table inside its own box, cutting columns off.
    for box in page.locator("#changelist .results").all():
        inner, outer = box.evaluate("element => [element.scrollWidth, element.clientWidth]")
        assert inner <= outer, f"the list on {page.url} is {inner} px wide in {outer} px"


def code_of(device: TOTPDevice) -> str:
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{value:0{device.digits}d}"


def shot(page: Page, name: str) -> None:
    """A screenshot for people to look at, when ESCROW_SCREENSHOT_DIR names a folder."""
    if folder := os.environ.get("ESCROW_SCREENSHOT_DIR"):
        page.screenshot(path=f"{folder}/{name}", full_page=True)


def day(value) -> str:
    return f"{value.day} {value:%b %Y}"


@pytest.fixture
def staff_page(browser: Browser, live_server: LiveServer) -> Iterator[tuple[Page, list[str]]]:
    """A signed-in staff member's page at 1280 px, and the console errors it saw."""
    staff = UserFactory(email=STAFF, role=Role.STAFF, organisation=None)
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not AXE_RUNNING:
            problems.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on(
        "framenavigated", lambda frame: AXE_RUNNING.clear() if frame == page.main_frame else None
    )
    page.goto("/admin/login/")
    page.get_by_label("Email").fill(STAFF)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("input[name=otp_token]").fill(code_of(device))
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_have_text("Software Escrow — staff")
    yield page, problems
    context.close()


def test_staff_record_a_payment_and_issue_a_credit_note_in_the_browser(
    staff_page: tuple[Page, list[str]], licence, subscriber
) -> None:
    page, problems = staff_page
    _, to_pay = subscribe(licence, subscriber)
    others = []
    for index in range(3):
        customer = OrganisationFactory(name=f"Contoso Wholesale Trading Group {index} B.V.")
        other = LicenceFactory(customer=customer, product=licence.product)
        others.append(subscribe(other, UserFactory(organisation=customer))[1])
    to_credit = others[0]
    today = timezone.localdate()
    due = to_pay.amount_due()

    page.goto("/admin/billing/invoice/")
    expect(page.get_by_role("columnheader", name="Balance")).to_be_visible()
    expect(page.get_by_role("link", name=f"PDF of Invoice {to_pay.number}")).to_be_visible()
    fits_and_passes_axe(page, phone=True)

    # The read-only invoice page: parties as fields, no edit controls.
    page.get_by_role("link", name=to_pay.number, exact=True).click()
    expect(page.get_by_role("heading", name="Customer, as invoiced")).to_be_visible()
    for control in ("Save", "Save and continue editing", "Delete"):
        expect(page.get_by_role("button", name=control, exact=True)).to_have_count(0)
        expect(page.get_by_role("link", name=control, exact=True)).to_have_count(0)
    # Django's inline script builds its "Add another" row hidden when nothing may be added.
    expect(page.locator("text=Add another >> visible=true")).to_have_count(0)
    fits_and_passes_axe(page, phone=True)
    shot(page, "staff-invoice.png")

    # Record a payment: form, confirmation, then the payment.
    page.get_by_role("link", name="Record payment").click()
    expect(page.get_by_label("Amount received (EUR)")).to_have_value(f"{due:.2f}")
    fits_and_passes_axe(page, phone=True)
    page.get_by_label("Received on").fill(today.isoformat())
    page.get_by_label("Bank reference").fill("NL-2026-12-REF-42")
    page.get_by_role("button", name="Review the payment").click()
    expect(page.get_by_text(
        f"Record EUR {due:,.2f} received on {day(today)} for invoice {to_pay.number}, "
        "reference NL-2026-12-REF-42?"
    )).to_be_visible()  # fmt: skip
    shot(page, "staff-confirm-payment.png")
    fits_and_passes_axe(page, phone=True)
    assert not Payment.objects.exists()
    page.get_by_role("button", name="Yes, record the payment").click()
    expect(page.get_by_text(f"Recorded EUR {due:,.2f} received on {day(today)}")).to_be_visible()
    expect(page.get_by_text("NL-2026-12-REF-42")).to_be_visible()
    payment = Payment.objects.get()
    assert (payment.invoice, payment.received_on, payment.reference) == (
        to_pay,
        today,
        "NL-2026-12-REF-42",
    )
    expect(page.get_by_role("link", name="Record payment")).to_have_count(0)

    # Issue a credit note for part of another invoice from its page.
    page.goto(f"/admin/billing/invoice/{to_credit.pk}/change/")
    page.get_by_role("link", name="Issue credit note").click()
    page.get_by_label("Part of it").check()
    page.get_by_label("Net amount to credit (EUR)").fill("100.00")
    page.get_by_label("Reason").fill("Discount agreed at month-end")
    shot(page, "staff-credit-note.png")
    fits_and_passes_axe(page, phone=True)
    page.get_by_role("button", name="Review the credit note").click()
    expect(page.get_by_text(f"on invoice {to_credit.number}, for the reason")).to_be_visible()
    fits_and_passes_axe(page, phone=True)
    page.get_by_role("button", name="Yes, issue the credit note").click()
    note = Invoice.objects.get(corrects=to_credit)
    assert note.net_amount == Decimal("-100.00")
    expect(page.get_by_text(f"Credit note {note.number} issued for")).to_be_visible()

    # The list still fits, now with settled, due and credit-note rows.
    page.goto("/admin/billing/invoice/")
    expect(page.get_by_text("✓ settled")).to_be_visible()
    fits_and_passes_axe(page)
    shot(page, "staff-invoices.png")
    assert problems == []


def test_deposits_link_their_certificate_and_fit_1280_px(
    staff_page: tuple[Page, list[str]], product, notary
) -> None:
    page, problems = staff_page
    deposit = make_acknowledged_deposit(product=product, notary=notary, version="2026.12.0")
    page.goto("/admin/escrow/deposit/")
    link = page.get_by_role("link", name=f"Certificate of {product} 2026.12.0")
    expect(link).to_be_visible()
    fits_and_passes_axe(page)
    shot(page, "staff-deposits.png")
    page.goto(f"/admin/escrow/deposit/{deposit.pk}/change/")
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    with page.expect_download() as download:
        page.get_by_role("link", name=f"Certificate of {product} 2026.12.0").click()
    assert download.value.suggested_filename.endswith(".pdf")
    assert problems == []
