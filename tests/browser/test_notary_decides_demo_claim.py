"""The notary's main journey on the day the system is installed: in real Chromium,
the demo notary signs in with a second factor, opens the demo's claim whose contest
period has ended, sees why it waits and until when the vendor could contest, and
approves the release with written reasons and the demo identity file. The claimant
then finds the release in its portal, and the file it downloads opens with the age
tool and the demo's release key."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pytest_django.live_server_helper import LiveServer

from escrow.business_days import local_time_text
from escrow.demo import DEMO_TOTP_DEVICE, DemoResult, demo_load
from escrow.models import ClaimRelease, ReleaseClaim, ReleaseKey
from records.models import AuditEntry
from records.services.audit import audit_chain_verify

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-notary-password"
NOTARY = "notary@notaris.example"
CUSTOMER = "alice@northwind.example"
REASONS = (
    "The support agreement's 60-day cure period for ticket LP-4711 ended without a fix; "
    "the vendor did not contest. The release condition is met."
)


@pytest.fixture
def demo(tmp_path: Path) -> DemoResult:
    return demo_load(password=PASSWORD, identity_path=tmp_path / "notary-identity.txt")


@pytest.fixture
def context(
    browser: Browser, live_server: LiveServer, demo: DemoResult
) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    yield context
    context.close()


def watched(page: Page) -> list[str]:
    """Every console error and uncaught page error (CSP violations arrive as console
    errors) the page shows from now on."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"console error on {page.url}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error on {page.url}: {error}"))
    return problems


def sign_in(page: Page, url: str, email: str) -> None:
    page.goto(url)
    page.locator("input[name=username]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def current_code(device: TOTPDevice) -> str:
    """The code the demo authenticator shows now (`manage.py demo_totp`)."""
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{code:0{device.digits}d}"


def pass_second_factor(page: Page, base_url: str) -> None:
    """Type the current code; a code that rolled over while typed is refused, and a
    person then waits out the lock-out and types the next one."""
    for attempt in range(2):
        device = TOTPDevice.objects.get(user__email=NOTARY, name=DEMO_TOTP_DEVICE)
        allowed, info = device.verify_is_allowed()
        if not allowed and info and info.get("locked_until"):
            time.sleep(max((info["locked_until"] - timezone.now()).total_seconds(), 0) + 0.2)
        page.locator("input[name=token]").fill(current_code(device))
        with page.expect_navigation():
            page.get_by_role("button", name="Verify").click()
        if page.url == f"{base_url}/notary/":
            return
        assert attempt == 0, f"the current code was refused twice; page at {page.url}"


def test_the_notary_approves_the_demo_claim_and_the_claimant_receives_it(
    context: BrowserContext, live_server: LiveServer, demo: DemoResult, tmp_path: Path
) -> None:
    base = live_server.url
    claim = ReleaseClaim.objects.get(
        claimant__name="Northwind Logistics B.V.", product__slug="ledger-pro"
    )
    assert claim.state == "under_review"
    assert claim.contest_deadline is not None
    deadline = local_time_text(claim.contest_deadline, time_zone="Europe/Amsterdam")
    assert demo.identity_path is not None and demo.release_key_path is not None

    # The notary signs in with the password and the demo authenticator's code.
    notary_page = context.new_page()
    notary_problems = watched(notary_page)
    sign_in(notary_page, f"{base}/notary/login/", NOTARY)
    expect(notary_page).to_have_url(f"{base}/notary/verify/")
    pass_second_factor(notary_page, base)
    expect(notary_page.get_by_role("heading", level=1)).to_have_text("Notary register")

    # The dashboard lists the claim among the open ones; the notary opens it.
    claims = notary_page.locator("section").filter(
        has=notary_page.get_by_role("heading", name="Open release claims")
    )
    row = claims.locator("tbody tr").filter(has_text="Northwind Logistics B.V.")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Ledger Pro")
    expect(row).to_contain_text("Under review by the notary")
    row.get_by_role("link", name=str(claim.pk), exact=True).click()
    expect(notary_page).to_have_url(f"{base}/notary/claims/{claim.pk}/")

    # It says what the claim waits for and when the vendor's contest period ended.
    wait = notary_page.locator("dl.claim-wait")
    expect(wait).to_contain_text("The notary's decision")
    expect(wait).to_contain_text(deadline)
    expect(wait).to_contain_text("ended")
    expect(notary_page.get_by_text("LP-4711").first).to_be_visible()

    # Approve, with written reasons and the demo identity file, for this request only.
    notary_page.get_by_label("Approve the release").check()
    notary_page.locator("textarea[name=reasons]").fill(REASONS)
    notary_page.locator("input[name=identity_file]").set_input_files(str(demo.identity_path))
    with notary_page.expect_navigation():
        notary_page.get_by_role("button", name="Record the decision").click()
    expect(notary_page).to_have_url(f"{base}/notary/claims/{claim.pk}/")
    expect(notary_page.get_by_text("Your decision is recorded.")).to_be_visible()
    released = notary_page.locator("section").filter(
        has=notary_page.get_by_role("heading", name="Released", exact=True)
    )
    expect(released).to_contain_text("Ledger Pro 1.0.0")
    expect(notary_page.locator(".state").first).to_have_text("Released")
    expect(notary_page.locator("textarea[name=reasons]")).to_have_count(0)  # decided: no form

    claim.refresh_from_db()
    release = ClaimRelease.objects.get(claim=claim)
    assert claim.state == "released"
    assert claim.decided_by is not None and claim.decided_by.email == NOTARY
    assert claim.decision_reasons == REASONS
    assert release.deposit.version == "1.0.0"
    assert release.recipient == ReleaseKey.objects.get(organisation=claim.claimant).recipient
    decided = AuditEntry.objects.filter(object_type="escrow.ReleaseClaim", object_id=str(claim.pk))
    assert [e.to_state for e in decided if e.to_state][-2:] == ["approved", "released"]
    assert audit_chain_verify().intact
    assert notary_problems == []

    # The claimant finds the release in its portal and downloads it.
    customer_page = context.new_page()
    customer_problems = watched(customer_page)
    sign_in(customer_page, f"{base}/portal/login/", CUSTOMER)
    expect(customer_page).to_have_url(f"{base}/portal/")
    customer_page.goto(f"{base}/portal/claims/")
    mine = customer_page.locator("tbody tr").filter(has_text="Ledger Pro")
    expect(mine).to_contain_text("Released")
    mine.get_by_role("link", name=str(claim.pk), exact=True).click()
    expect(customer_page.locator("p").filter(has_text="The notary's reasons")).to_contain_text(
        REASONS
    )
    with customer_page.expect_download() as download_info:
        customer_page.get_by_role("link", name="Download the released file").click()
    downloaded = tmp_path / "released.age"
    download_info.value.save_as(downloaded)
    opened = subprocess.run(
        ["age", "-d", "-i", str(demo.release_key_path), str(downloaded)],
        capture_output=True,
        check=True,
    ).stdout
    assert hashlib.sha256(opened).hexdigest() == release.deposit.archive_sha256
    assert customer_problems == []
