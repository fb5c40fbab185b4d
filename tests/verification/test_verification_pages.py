"""Build verification shown to the people who rely on it: the subscriber's deposit
rows (dashboard and product page) carry a badge in words that opens the summary, the
notary sees it in the register, on the deposit page and on the claim page, and the
release letter's sentence says whether the released deposit passed and when. Every
list stays at a constant number of queries, whatever its number of deposits."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext

from accounts.models import Product
from escrow.models import Deposit
from tests.conftest import signed_in_client
from tests.factories import (
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
    make_deposit,
)
from verification.models import BuildVerification, VerificationState

FINISHED = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
ARTEFACT_SHA256 = "3f" * 32
LOG_TAIL = "cc -o build/app main.c\nBuild finished: build/app\n"


def verified(
    deposit: Deposit, state: str = VerificationState.PASSED, **fields
) -> BuildVerification:
    """A finished verification record, as the pipeline would leave it (its states and
    their services are tested in tests/verification by helper VERIFY's tests)."""
    values = {
        "deposit_id": deposit.pk,
        "product": deposit.product,
        "state": state,
        "recipe_source": "archive",
        "recipe": {"command": "make", "artefacts": ["build/app"]},
        "exit_code": 0 if state == VerificationState.PASSED else None,
        "started_at": FINISHED,
        "finished_at": FINISHED,
        "duration_seconds": 4.25,
        "log_tail": LOG_TAIL,
        "artefacts": [{"path": "build/app", "sha256": ARTEFACT_SHA256, "size": 16384}],
        "toolchain": {"cc": "12.2.0", "make": "4.3"},
    }
    values.update(fields)
    return BuildVerification.objects.create(**values)


@pytest.fixture
def covered(licence, subscriber, staff):
    return make_active_subscription(licence=licence, actor=subscriber, staff=staff)


BADGE = re.compile(
    r'class="badge verification-badge[^"]*">[^<]*'
    r'<span aria-hidden="true">[^<]*</span> ([^<]+)</span>'
)


def badge(html: str, label: str) -> bool:
    """The badge says its outcome in words (colour only repeats them)."""
    return label in BADGE.findall(html)


# --- the subscriber ---------------------------------------------------------------------


def test_the_product_page_shows_each_deposit_s_badge_and_its_summary(
    covered, product, subscriber
) -> None:
    passed = make_deposit(product=product, version="1.0.0")
    failed = make_deposit(product=product, version="1.1.0")
    make_deposit(product=product, version="1.2.0")  # from before verification: no record
    verified(passed)
    verified(
        failed,
        VerificationState.FAILED,
        exit_code=2,
        artefacts=[],
        log_tail="curl: (6) Could not resolve host: example.com\n",
        problem="The build exited with code 2.",
    )
    html = signed_in_client(subscriber).get(f"/portal/products/{product.slug}/").content.decode()
    assert badge(html, "Build verified")
    assert badge(html, "Build failed")
    assert "Not verified</span>" in html
    # The summary opens from the badge: outcome, when, duration, artefacts, toolchain, log.
    assert '<details class="verification-details"><summary>' in html
    assert "20 Nov 2026 at 14:30 UTC" in html
    assert "4.3 s" in html
    assert f"<code>{ARTEFACT_SHA256}</code>" in html
    assert "<code>cc</code> 12.2.0" in html
    assert "Build finished: build/app" in html
    assert "Could not resolve host: example.com" in html
    assert "(exit code 2)" in html
    assert "The build exited with code 2." in html


def test_the_dashboard_shows_the_badge_of_each_recent_deposit(covered, product, subscriber) -> None:
    deposit = make_deposit(product=product, version="3.0.0")
    verified(deposit, VerificationState.NO_RECIPE, problem="No escrow.toml at the archive root.")
    html = signed_in_client(subscriber).get("/portal/").content.decode()
    assert "<th>Build</th>" in html
    assert badge(html, "No build recipe")
    assert "No escrow.toml at the archive root." in html


def test_a_customer_does_not_see_another_product_s_verification(
    covered, vendor, subscriber
) -> None:
    other = Product.objects.create(vendor=vendor, name="Other", slug="other")
    verified(make_deposit(product=other, version="9.9.9"), log_tail="secret build output\n")
    html = signed_in_client(subscriber).get("/portal/").content.decode()
    assert "secret build output" not in html


# --- the notary ---------------------------------------------------------------------------


def test_the_register_and_the_deposit_page_show_the_verification(product, notary) -> None:
    deposit = make_acknowledged_deposit(product=product, notary=notary)
    verified(deposit, VerificationState.TIMED_OUT, problem="Stopped at the time limit of 600 s.")
    client = signed_in_client(notary)
    for url in ("/notary/", "/notary/deposits/"):
        assert badge(client.get(url).content.decode(), "Build timed out"), url
    page = client.get(f"/notary/deposits/{deposit.pk}/").content.decode()
    assert "<h2>Build verification</h2>" in page
    assert badge(page, "Build timed out")
    assert "Stopped at the time limit of 600 s." in page
    assert f"<code>{ARTEFACT_SHA256}</code>" in page


def test_the_deposit_page_says_when_a_deposit_has_no_verification(product, notary) -> None:
    deposit = make_acknowledged_deposit(product=product, notary=notary)
    page = signed_in_client(notary).get(f"/notary/deposits/{deposit.pk}/").content.decode()
    assert "This deposit has no build verification" in page


@pytest.mark.parametrize(
    ("state", "fields", "sentence"),
    [
        (
            VerificationState.PASSED,
            {},
            "This deposit passed build verification on 20 November 2026.",
        ),
        (
            VerificationState.FAILED,
            {"problem": "The build exited with code 2."},
            "This deposit was not verified (checked on 20 November 2026): "
            "The build exited with code 2.",
        ),
    ],
)
def test_the_claim_page_says_whether_the_deposit_to_release_passed_and_when(
    covered, product, subscriber, notary, notary_identity, state, fields, sentence
) -> None:
    deposit = make_acknowledged_deposit(product=product, notary=notary)
    verified(deposit, state, **fields)
    claim = make_claim(product=product, filed_by=subscriber)
    page = signed_in_client(notary).get(f"/notary/claims/{claim.pk}/").content.decode()
    assert sentence in page
    assert "Build verification details" in page


def test_the_claim_page_says_when_the_deposit_to_release_has_no_verification(
    covered, product, subscriber, notary, notary_identity
) -> None:
    make_acknowledged_deposit(product=product, notary=notary)
    claim = make_claim(product=product, filed_by=subscriber)
    page = signed_in_client(notary).get(f"/notary/claims/{claim.pk}/").content.decode()
    assert "This deposit was not verified: it has no build verification record." in page


# --- the release letter's sentence --------------------------------------------------------


def test_the_release_line_says_passed_and_when_or_why_not(product) -> None:
    def line(verification: BuildVerification | None) -> str:
        return render_to_string(
            "verification/_release_line.html", {"verification": verification}
        ).strip()

    passed = verified(make_deposit(product=product, version="1.0.0"))
    assert line(passed) == "The released deposit passed build verification on 20 November 2026."
    busy = verified(
        make_deposit(product=product, version="1.1.0"),
        VerificationState.BUSY,
        problem="not verified (busy): 12 verifications were already running or waiting.",
    )
    assert line(busy) == (
        "The released deposit was not verified (checked on 20 November 2026): not verified "
        "(busy): 12 verifications were already running or waiting."
    )
    pending = verified(
        make_deposit(product=product, version="1.2.0"),
        VerificationState.PENDING,
        finished_at=None,
    )
    assert line(pending) == "The released deposit was not verified: verification pending."
    assert line(None) == (
        "The released deposit was not verified: it has no build verification record."
    )


# --- a constant number of queries ---------------------------------------------------------


def queries(client, url: str) -> int:
    assert client.get(url).status_code == 200  # the session is read once, as in real use
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_each_page_with_badges_costs_the_same_queries_at_two_sizes(
    covered, product, subscriber, notary
) -> None:
    pages = {
        "/portal/": subscriber,
        f"/portal/products/{product.slug}/": subscriber,
        "/notary/": notary,
        "/notary/deposits/": notary,
    }
    counts: dict[int, dict[str, int]] = {}
    made = 0
    for size in (3, 40):
        for n in range(made, size):
            state = [VerificationState.PASSED, VerificationState.FAILED][n % 2]
            verified(
                make_acknowledged_deposit(product=product, notary=notary, version=f"2.{n}"), state
            )
        made = size
        counts[size] = {url: queries(signed_in_client(user), url) for url, user in pages.items()}
        html = signed_in_client(subscriber).get(f"/portal/products/{product.slug}/").content
        assert html.decode().count("verification-details") == min(size, 25)
    assert counts[3] == counts[40]
