"""What a claim waits for, in words, for every state of its machine, with the contest
deadline on the vendor's clock and the time left of it (or since it ended)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from escrow.models import ClaimState, ReleaseClaim
from escrow.services import claims as service
from escrow.services.claim_status import claim_waiting_for, contest_time_left
from escrow.services.evidence import Upload
from tests.factories import (
    EVIDENCE_PDF,
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
FILED = datetime(2026, 12, 23, 10, 0, tzinfo=AMSTERDAM)
# Ten Dutch business days after Wednesday 23 December 2026 10:00 (Christmas and New
# Year skipped, see test_contest_christmas.py): Friday 8 January 2027, 10:00 CET.
DEADLINE = datetime(2027, 1, 8, 9, 0, tzinfo=UTC)
DEADLINE_TEXT = "Friday 8 January 2027, 10:00 CET (Europe/Amsterdam)"
BEFORE = datetime(2027, 1, 7, 9, 0, tzinfo=UTC)  # Thursday 10:00: one business day left
AFTER = DEADLINE + timedelta(days=2, hours=3)

REVIEW = ["notify_vendor", "mark_uncontested", "start_review"]
PATHS = {
    "filed": [],
    "vendor_notified": ["notify_vendor"],
    "contested": ["notify_vendor", "contest"],
    "uncontested": ["notify_vendor", "mark_uncontested"],
    "under_review": REVIEW,
    "evidence_requested": [*REVIEW, "request_evidence"],
    "approved": [*REVIEW, "approve"],
    "released": [*REVIEW, "approve", "release"],
    "rejected": [*REVIEW, "reject"],
    "withdrawn": ["withdraw"],
}
WAITS = {
    "filed": (
        "The notice to the vendor, which goes out moments after filing (the scheduled "
        "check, every 15 minutes, sends one that is late). The contest period starts then."
    ),
    "vendor_notified": (
        f"The vendor's contest period, until {DEADLINE_TEXT}: Acme Software B.V. may "
        "contest the claim or release voluntarily. Then the notary reviews it."
    ),
    "contested": "The notary's review, which starts at once.",
    "uncontested": "The notary's review, which starts at once.",
    "under_review": (
        "The notary's decision: approve the release, reject the claim, or ask the "
        "claimant for more evidence."
    ),
    "evidence_requested": (
        "Further evidence from Northwind Logistics B.V., as the notary asked; the review "
        "resumes once it is added."
    ),
    "approved": "The hand-over of the release the notary approved, which follows at once.",
    "released": "Nothing: the claim is released, which is final.",
    "rejected": "Nothing: the claim is rejected, which is final.",
    "withdrawn": "Nothing: the claim is withdrawn, which is final.",
}


@pytest.fixture
def people(vendor, product, notary, staff, subscriber, licence):
    vendor.time_zone = "Europe/Amsterdam"
    vendor.save(update_fields=["time_zone"])
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)
    return {"product": product, "notary": notary, "subscriber": subscriber}


def reach(state: str, people) -> ReleaseClaim:
    notary, subscriber = people["notary"], people["subscriber"]
    fire = {
        "notify_vendor": lambda c: service.claim_notify_vendor(claim=c),
        "contest": lambda c: service.claim_contest(claim=c, actor=None, statement="Solvent."),
        "mark_uncontested": lambda c: service.claim_mark_uncontested(claim=c),
        "start_review": lambda c: service.claim_start_review(claim=c, actor=None),
        "request_evidence": lambda c: service.claim_request_evidence(
            claim=c, notary=notary, reasons="Add the ruling."
        ),
        "approve": lambda c: service.claim_approve(claim=c, notary=notary, reasons="Proven."),
        "release": lambda c: service.claim_release(claim=c, actor=None),
        "reject": lambda c: service.claim_reject(claim=c, notary=notary, reasons="Not proven."),
        "withdraw": lambda c: service.claim_withdraw(claim=c, actor=subscriber),
    }
    with time_machine.travel(FILED, tick=False):
        claim = make_claim(product=people["product"], filed_by=subscriber)
        for step in PATHS[state]:
            fire[step](claim)
            claim.refresh_from_db()
    assert claim.state == state
    return claim


def test_every_state_has_an_answer() -> None:
    assert set(WAITS) == set(ClaimState.values)


@pytest.mark.parametrize("state", list(PATHS))
def test_what_each_state_waits_for(state, people) -> None:
    claim = reach(state, people)
    wait = claim_waiting_for(claim=claim, now=BEFORE)
    assert wait.waiting_for == WAITS[state]
    assert wait.final == (state in ("released", "rejected", "withdrawn"))
    if state in ("filed", "withdrawn"):
        assert (wait.deadline, wait.deadline_text, wait.time_left) == (None, "", "")
    else:
        assert (wait.deadline, wait.deadline_text) == (DEADLINE, DEADLINE_TEXT)
        # Time left counts only while the vendor may still contest.
        assert wait.time_left == ("1 business day left" if state == "vendor_notified" else "")
        if state != "vendor_notified":
            later = claim_waiting_for(claim=claim, now=AFTER).time_left
            assert later == "ended 2 days, 3 hours ago"


def test_a_notified_claim_past_its_deadline_waits_for_the_scheduled_check(people) -> None:
    claim = reach("vendor_notified", people)
    wait = claim_waiting_for(claim=claim, now=AFTER)
    assert wait.waiting_for == (
        "The scheduled check that moves it on to the notary (it runs every 15 minutes): "
        f"the contest period ended on {DEADLINE_TEXT} without a contest."
    )
    assert wait.time_left == "ended 2 days, 3 hours ago"
    assert not wait.final


def test_the_check_interval_is_the_one_the_schedule_uses(people, settings) -> None:
    settings.CELERY_BEAT_SCHEDULE = {
        "claims": {"task": "escrow.claims_contest_elapsed", "schedule": timedelta(minutes=5)}
    }
    claim = reach("vendor_notified", people)
    assert "(it runs every 5 minutes)" in claim_waiting_for(claim=claim, now=AFTER).waiting_for


@pytest.mark.parametrize(
    ("now", "left"),
    [
        (FILED, "10 business days left"),
        (FILED + timedelta(hours=4), "9 business days, 20 hours left"),
        (DEADLINE - timedelta(hours=3, minutes=20), "3 hours, 20 minutes left"),
        (DEADLINE - timedelta(seconds=59), "less than a minute left"),
        (DEADLINE, "ended less than a minute ago"),
        (DEADLINE + timedelta(minutes=40), "ended 40 minutes ago"),
        (DEADLINE + timedelta(days=1), "ended 1 day ago"),
    ],
)
def test_the_time_left_in_business_days_then_real_time(now, left, people) -> None:
    claim = reach("vendor_notified", people)
    assert contest_time_left(claim=claim, now=now) == left


def test_a_claim_provided_with_evidence_waits_for_the_notary_again(people) -> None:
    claim = reach("evidence_requested", people)
    service.claim_provide_evidence(
        claim=claim, actor=people["subscriber"], uploads=[Upload("more.pdf", EVIDENCE_PDF)]
    )
    claim.refresh_from_db()
    assert claim_waiting_for(claim=claim, now=AFTER).waiting_for == WAITS["under_review"]
