"""Every page of the three doors, in Chromium at a phone's width (390 px) and a desktop's
(1280 px): no page is wider than the window, axe-core finds nothing serious or
critical, and nothing breaks the Content-Security-Policy. Each door's first page is
photographed at both widths for the README (``make screenshots``).

The pages walked are listed in ``PAGES`` just below; ``{name}`` in a path is filled
from the demo data by ``demo_values``. ``UPCOMING`` lists pages being built: each is
walked once its URL exists; move it into ``PAGES`` then, where a missing page fails."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, Page, ViewportSize, expect
from pytest_django.live_server_helper import LiveServer

from accounts.models import Organisation, Product, Role, User
from billing.models import Invoice, LicenceAgreement, Subscription
from escrow.demo import DEMO_TOTP_DEVICE, DemoResult, demo_load
from escrow.models import Deposit, DepositCopy, ReleaseClaim

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# --- The pages, door by door ------------------------------------------------------
# "before" pages are walked signed out (and, for the notary, before the second factor);
# "after" pages once signed in. Every admin list and one change page of each model are
# walked as well (``admin_pages``), so a newly registered model is covered by itself.
PAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "customer": {
        "before": ("/portal/login/", "/portal/password/reset/"),
        "after": (
            "/portal/",
            "/portal/products/{product_slug}/",
            "/portal/licences/{unsubscribed_licence}/subscribe/",
            "/portal/subscriptions/{active_subscription}/cancel/",
            "/portal/invoices/",
            "/portal/claims/",
            "/portal/claims/{customer_claim}/",
            "/portal/notifications/",
            "/portal/release-key/",
            "/portal/exports/",
            "/portal/password/change/",
        ),
    },
    "notary": {
        "before": ("/notary/login/", "/notary/verify/"),
        "after": (
            "/notary/",
            "/notary/deposits/{notary_deposit}/",
            "/notary/claims/{notary_claim}/",
            "/notary/seal-changes/",
            "/notary/colleagues/",
            "/notary/identity/",
            "/notary/witness/",
            "/notary/notifications/",
        ),
    },
    "staff": {
        "before": ("/admin/login/",),
        "after": ("/admin/",),
    },
}

# Pages other parts of issue 14 are adding, by URL name and arguments: each is walked
# once its name exists (move it into PAGES then, where a missing page fails).
UPCOMING: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "customer": (
        ("portal:account", ()),
        ("portal:colleagues", ()),
        ("portal:agreement", ()),
    ),
    "notary": (
        ("notary:claims", ()),
        ("notary:deposits", ()),
    ),
    "staff": (
        ("admin:billing_invoice_record_payment", ("{invoice_id}",)),
        ("admin:billing_invoice_credit_note", ("{invoice_id}",)),
    ),
}

CUSTOMER_MENU = [
    "Dashboard",
    "Invoices",
    "Claims",
    "Notifications",
    "Release key",
    "Data export",
    "Account",
]
NOTARY_MENU = [
    "Register",
    "Claims",
    "Seal changes",
    "Colleagues",
    "Stored identity",
    "Witness key",
    "Safe export (ZIP)",
    "Notifications",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
WIDTHS = (PHONE, DESKTOP)
BLOCKING_IMPACTS = {"serious", "critical"}
# Rules held to whatever impact axe gives them: headings never skip a level.
BLOCKING_RULES = {"heading-order"}
PASSWORD = "browser-every-page-password"
CUSTOMER = "alice@northwind.example"
NOTARY = "notary@notaris.example"
NEW_NOTARY = "new.notary@notaris.example"
STAFF = "staff@acme.example"
AXE = Axe()


def demo_values() -> dict[str, str]:
    """What fills the ``{name}`` slots of PAGES: one object of each kind from the demo."""
    northwind = Organisation.objects.get(users__email=CUSTOMER)
    active = Subscription.objects.filter(licence__customer=northwind, state="active").first()
    unsubscribed = LicenceAgreement.objects.filter(
        customer=northwind, subscriptions__isnull=True
    ).first()
    claim = ReleaseClaim.objects.filter(claimant=northwind).order_by("pk").first()
    deposit = Deposit.objects.filter(state="acknowledged").order_by("pk").first()
    invoice = Invoice.objects.order_by("pk").first()
    product = Product.objects.filter(licences__customer=northwind).first()
    assert product is not None, "the demo's customer licenses no product"
    found = {
        "active_subscription": active,
        "unsubscribed_licence": unsubscribed,
        "customer_claim": claim,
        "notary_deposit": deposit,
        "notary_claim": ReleaseClaim.objects.order_by("pk").first(),
        "invoice_id": invoice,
    }
    missing = [name for name, value in found.items() if value is None]
    assert not missing, f"the demo data has no object for {missing}"
    values = {name: str(getattr(value, "pk", "")) for name, value in found.items()}
    return {"product_slug": product.slug, **values}


def admin_pages() -> list[str]:
    """The admin's index of each app, every model's list and the change page of its first
    object (read-only for most: staff look, they do not edit)."""
    pages = []
    for model in admin.site._registry:
        meta = model._meta
        pages.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages.append(
                reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            )
    apps = sorted({model._meta.app_label for model in admin.site._registry})
    return [reverse("admin:app_list", args=[app]) for app in apps] + sorted(pages)


def pages_of(door: str, stage: str, values: dict[str, str]) -> list[str]:
    paths = [path.format(**values) for path in PAGES[door][stage]]
    if stage == "after":
        for name, args in UPCOMING[door]:
            try:
                paths.append(reverse(name, args=[arg.format(**values) for arg in args]))
            except NoReverseMatch:
                continue
    return paths


# --- Walking a page ----------------------------------------------------------------
@dataclass
class Walk:
    """One browser page walking one door, and every problem it has seen."""

    page: Page
    base_url: str
    problems: list[str] = field(default_factory=list)
    walked: list[str] = field(default_factory=list)
    # axe builds test elements with inline styles, which the CSP refuses and the console
    # reports; the page's own console errors are those seen while axe is not running.
    auditing: bool = False

    def console_error(self, text: str) -> None:
        if not self.auditing:
            self.problems.append(f"console error on {self.page.url}: {text}")

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def check(self, path: str, *, screenshot: Callable[[Page, str], None] | None = None) -> None:
        """Open ``path`` and check it at each width."""
        page = self.page
        page.set_viewport_size(WIDTHS[0])
        response = page.goto(self.url(path))
        assert response is not None
        if response.status != 200:
            self.problems.append(f"{path}: HTTP {response.status}")
            return
        self.walked.append(path)
        for width in WIDTHS:
            page.set_viewport_size(width)
            where = f"{path} at {width['width']} px"
            overflow = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if overflow[0] > overflow[1]:
                self.problems.append(
                    f"{where}: the page is {overflow[0]} px wide, wider than the window "
                    f"({overflow[1]} px); widest elements: {widest_elements(page)}"
                )
            self.auditing = True
            try:
                self.problems.extend(f"{where}: {text}" for text in axe_problems(page))
            finally:
                self.auditing = False
            if screenshot is not None:
                screenshot(page, "" if width is DESKTOP else "-phone")


def widest_elements(page: Page) -> str:
    """The elements that stick out past the window's right edge, deepest first."""
    found = page.evaluate(
        """() => {
          const out = [];
          for (const el of document.querySelectorAll('body *')) {
            const box = el.getBoundingClientRect();
            if (box.right > window.innerWidth + 1 && !el.closest('.table-wrap, .results')) {
              const children = [...el.children].some(
                c => c.getBoundingClientRect().right > window.innerWidth + 1);
              if (!children) {
                const cls = el.className && typeof el.className === 'string'
                  ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
                out.push(`${el.tagName.toLowerCase()}${cls} (${Math.round(box.right)} px)`);
              }
            }
          }
          return out.slice(0, 5);
        }"""
    )
    return ", ".join(found) or "none found"


def axe_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations (and any of BLOCKING_RULES), one
    readable line per element."""
    results = AXE.run(page).response
    lines = []
    for violation in results["violations"]:
        if violation["impact"] not in BLOCKING_IMPACTS and violation["id"] not in BLOCKING_RULES:
            continue
        for node in violation["nodes"][:5]:
            summary = node.get("failureSummary", "").replace("\n", " ")
            lines.append(
                f"axe {violation['impact']} {violation['id']} ({violation['help']}): "
                f"{', '.join(map(str, node['target']))}: {node['html'][:160]} — {summary}"
            )
    return lines


@pytest.fixture
def demo(tmp_path: Path) -> DemoResult:
    return demo_load(password=PASSWORD, identity_path=tmp_path / "notary-identity.txt")


@pytest.fixture
def walk(browser: Browser, live_server: LiveServer, demo: DemoResult) -> Iterator[Walk]:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    current = Walk(page=page, base_url=live_server.url)
    page.on(
        "console",
        lambda message: current.console_error(message.text) if message.type == "error" else None,
    )
    page.on(
        "pageerror", lambda error: current.problems.append(f"page error on {page.url}: {error}")
    )
    yield current
    context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[str], Callable[[Page, str], None]]:
    """``screenshot("customer-dashboard")`` photographs a page at each width, into
    ESCROW_SCREENSHOT_DIR (docs/screenshots with ``make screenshots``)."""
    directory = Path(os.environ.get("ESCROW_SCREENSHOT_DIR") or tmp_path)

    def for_name(name: str) -> Callable[[Page, str], None]:
        def take(page: Page, suffix: str) -> None:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{name}{suffix}.png"
            page.screenshot(path=str(path), full_page=True)
            assert path.stat().st_size > 10_000, f"{path} is nearly empty"

        return take

    return for_name


def sign_in(walk: Walk, path: str, email: str) -> None:
    page = walk.page
    page.goto(walk.url(path))
    page.locator("input[name=username]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("form button[type=submit], form input[type=submit]").last.click()


def current_code(email: str) -> str:
    """The code the demo authenticator shows now; after a refused code, once django-otp's
    lock-out (1, 2, 4 ... seconds) has passed, as a person would wait."""
    device = TOTPDevice.objects.get(user__email=email, name=DEMO_TOTP_DEVICE)
    allowed, info = device.verify_is_allowed()
    if not allowed and info and info.get("locked_until"):
        time.sleep(max((info["locked_until"] - timezone.now()).total_seconds(), 0) + 0.2)
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{code:0{device.digits}d}"


def assert_menu(walk: Walk, door: str, links: list[str], current: str) -> None:
    """The door's menu names every page, marks the current one, and at a phone's width
    shows it and Sign out whole, inside the window."""
    page = walk.page
    menu = page.get_by_role("navigation", name=door)
    assert [name.strip() for name in menu.get_by_role("link").all_inner_texts()] == links
    expect(menu.locator('a[aria-current="page"]')).to_have_text(current)
    page.set_viewport_size(PHONE)
    for item in [*menu.get_by_role("link").all(), page.get_by_role("button", name="Sign out")]:
        box = item.bounding_box()
        assert box is not None and item.is_visible(), f"{item} is hidden at 390 px"
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            f"{item.inner_text()} is clipped at 390 px: {box}"
        )


def report(walk: Walk) -> str:
    return f"{len(walk.problems)} problem(s) on {len(walk.walked)} pages:\n" + "\n".join(
        walk.problems
    )


# --- One test per door --------------------------------------------------------------
def test_every_customer_page_fits_a_phone_and_passes_axe(
    walk: Walk, screenshot: Callable[[str], Callable[[Page, str], None]]
) -> None:
    values = demo_values()
    for path in pages_of("customer", "before", values):
        walk.check(path)
    sign_in(walk, "/portal/login/", CUSTOMER)
    expect(walk.page).to_have_url(walk.url("/portal/"))
    after = pages_of("customer", "after", values)
    walk.check(after[0], screenshot=screenshot("customer-dashboard"))
    assert_menu(walk, "Customer portal", CUSTOMER_MENU, current="Dashboard")
    for path in after[1:]:
        walk.check(path)
    assert not walk.problems, report(walk)


def test_every_notary_page_fits_a_phone_and_passes_axe(
    walk: Walk, screenshot: Callable[[str], Callable[[Page, str], None]]
) -> None:
    values = demo_values()
    walk.check("/notary/login/")
    # A notary new to the portal first sets up an authenticator, by QR code.
    User.objects.create_user(
        email=NEW_NOTARY, password=PASSWORD, full_name="N. Ieuw", role=Role.NOTARY
    )
    sign_in(walk, "/notary/login/", NEW_NOTARY)
    expect(walk.page).to_have_url(walk.url("/notary/enrol/"))
    walk.check("/notary/enrol/")
    expect(walk.page.get_by_role("img", name="QR code", exact=False)).to_be_visible()
    with walk.page.expect_navigation():
        walk.page.get_by_role("button", name="Sign out").click()

    sign_in(walk, "/notary/login/", NOTARY)
    expect(walk.page).to_have_url(walk.url("/notary/verify/"))
    for path in pages_of("notary", "before", values)[1:]:
        walk.check(path)
    for attempt in range(2):
        walk.page.locator("input[name=token]").fill(current_code(NOTARY))
        with walk.page.expect_navigation():
            walk.page.get_by_role("button", name="Verify").click()
        if walk.page.url == walk.url("/notary/"):
            break
        assert attempt == 0, f"the current code was refused twice; page at {walk.page.url}"
    after = pages_of("notary", "after", values)
    walk.check(after[0], screenshot=screenshot("notary-dashboard"))
    assert_menu(walk, "Notary portal", NOTARY_MENU, current="Register")
    for path in after[1:]:
        walk.check(path)
    assert not walk.problems, report(walk)


def test_every_staff_page_fits_a_phone_and_passes_axe(
    walk: Walk, screenshot: Callable[[str], Callable[[Page, str], None]]
) -> None:
    values = demo_values()
    # A copy in an S3 site carries a long key and version id, as in CI; the deposit's
    # page lists its copies in a table that must still fit the window.
    first_deposit = Deposit.objects.order_by("pk").first()
    assert first_deposit is not None
    DepositCopy.objects.create(
        deposit=first_deposit,
        site="offsite-s3-eu-central-1",
        kind=DepositCopy.Kind.SEALED,
        key=f"deposits/{first_deposit.product.slug}/{first_deposit.version}/"
        "0f8e6d2c-5b7a-4c1e-9d3f-2a6b8c0e4f17.tar.age",
        version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY-1LaD4Vj4Kv0Mh6L9a3q2Wx",
        sha256="ab" * 32,
        size=123_456_789,
        verified_at=timezone.now(),
    )
    for path in pages_of("staff", "before", values):
        walk.check(path)
    page = walk.page
    page.goto(walk.url("/admin/login/"))
    page.locator("input[name=username]").fill(STAFF)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("input[name=otp_token]").fill(current_code(STAFF))
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(walk.url("/admin/"))
    after = pages_of("staff", "after", values)
    walk.check(after[0], screenshot=screenshot("staff-dashboard"))
    for path in [*after[1:], *admin_pages()]:
        walk.check(path)
    assert not walk.problems, report(walk)
