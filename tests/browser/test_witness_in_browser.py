"""In real Chromium, the demo notary acknowledges a recent demo deposit: it copies the
two commands the page shows, runs them with the real ssh-keygen and the demo's witness
key, pastes the signature back, and the acknowledgement carries its co-signature."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect
from pytest_django.live_server_helper import LiveServer

from escrow.demo import DemoResult, demo_load
from escrow.models import Deposit, DepositAcknowledgement
from tests.browser.test_notary_decides_demo_claim import (
    NOTARY,
    PASSWORD,
    pass_second_factor,
    sign_in,
    watched,
)
from transparency.models import WitnessSignature

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(tmp_path: Path) -> DemoResult:
    return demo_load(password=PASSWORD, identity_path=tmp_path / "notary-identity.txt")


@pytest.fixture
def context(
    browser: Browser, live_server: LiveServer, demo: DemoResult
) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context
    context.close()


def test_the_notary_cosigns_the_checkpoint_with_ssh_keygen_and_acknowledges(
    context: BrowserContext, live_server: LiveServer, demo: DemoResult, tmp_path: Path
) -> None:
    base = live_server.url
    assert demo.witness_key_path is not None
    deposit = Deposit.objects.get(product__slug="ledger-pro", version="1.1.0")
    assert deposit.state == "replicated"
    cosigned_before = WitnessSignature.objects.count()

    page = context.new_page()
    problems = watched(page)
    sign_in(page, f"{base}/notary/login/", NOTARY)
    pass_second_factor(page, base)
    page.goto(f"{base}/notary/deposits/{deposit.pk}/")

    # The page shows the checkpoint and the two commands; the notary runs them.
    desk = tmp_path / "desk"
    desk.mkdir()
    commands = page.locator("section ol pre code").all_inner_texts()
    assert len(commands) == 2, commands
    assert commands[0].startswith("printf ") and commands[1].startswith("ssh-keygen -Y sign ")
    for command in commands:
        command = command.replace("~/.ssh/escrow_witness", str(demo.witness_key_path))
        subprocess.run(["sh", "-c", command], cwd=desk, check=True, capture_output=True)
    (signature_file,) = desk.glob("checkpoint-*.txt.sig")

    page.get_by_label("Your signature of the checkpoint").fill(signature_file.read_text())
    page.get_by_role("button", name="Co-sign and acknowledge deposit").click()
    expect(page.get_by_text("You acknowledged Ledger Pro 1.1.0 and co-signed")).to_be_visible()
    deposit.refresh_from_db()
    assert deposit.state == "acknowledged"
    assert WitnessSignature.objects.count() == cosigned_before + 1
    receipt = DepositAcknowledgement.objects.get(deposit=deposit).receipt
    assert receipt["witness"]["signature"] == signature_file.read_text()
    assert not problems, problems
