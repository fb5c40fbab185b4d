"""What a release claim is waiting for, in words, with its deadline on the vendor's
clock. One function answers for every state, so the notary's page, the customer's
page and the e-mails never disagree about where a claim stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from escrow.business_days import business_days_left, local_time_text
from escrow.models import ClaimState, ReleaseClaim

CONTEST_TASK = "escrow.claims_contest_elapsed"


@dataclass(frozen=True)
class ClaimWait:
    """Where a claim stands: what (or who) it waits for, the contest deadline on the
    vendor's clock (with the zone's name) and how long is left of it or since it
    ended; ``final`` once nothing more will happen to it."""

    waiting_for: str
    deadline: datetime | None
    deadline_text: str
    time_left: str
    final: bool


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _duration(span: timedelta) -> str:
    """A real-time span in its two largest units: "2 days, 3 hours", "40 minutes"."""
    minutes = int(span.total_seconds() // 60)
    days, hours, minutes = minutes // (24 * 60), minutes // 60 % 24, minutes % 60
    if days:
        return _plural(days, "day") + (f", {_plural(hours, 'hour')}" if hours else "")
    if hours:
        return _plural(hours, "hour") + (f", {_plural(minutes, 'minute')}" if minutes else "")
    return _plural(minutes, "minute") if minutes else "less than a minute"


def contest_time_left(*, claim: ReleaseClaim, now: datetime) -> str:
    """ "3 business days, 4 hours left" before the contest deadline (business days on
    the vendor's calendar, the rest in real time); "ended 2 days ago" after it; "" when
    the claim has no deadline yet."""
    deadline = claim.contest_deadline
    if deadline is None:
        return ""
    if now >= deadline:
        return f"ended {_duration(now - deadline)} ago"
    vendor = claim.product.vendor
    days, rest = business_days_left(
        now, deadline, country=vendor.country, time_zone=vendor.effective_time_zone
    )
    if days:
        hours = int(rest.total_seconds() // 3600)
        return (
            _plural(days, "business day")
            + (f", {_plural(hours, 'hour')}" if hours else "")
            + " left"
        )
    return f"{_duration(rest)} left"


def _check_interval() -> str:
    """How often the scheduled check that ends contest periods runs, from the schedule
    beat (or the embedded scheduler) actually uses."""
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        if entry.get("task") == CONTEST_TASK:
            schedule = entry["schedule"]
            if isinstance(schedule, timedelta):
                return _duration(schedule)
            if isinstance(schedule, int | float):
                return _duration(timedelta(seconds=schedule))
    return "a few minutes"


def claim_waiting_for(*, claim: ReleaseClaim, now: datetime | None = None) -> ClaimWait:
    """What the claim waits for now, for every state of its machine."""
    now = now or timezone.now()
    vendor = claim.product.vendor
    deadline = claim.contest_deadline
    deadline_text = (
        local_time_text(deadline, time_zone=vendor.effective_time_zone) if deadline else ""
    )
    state = claim.state
    final = False
    if state == ClaimState.FILED:
        waiting_for = (
            "The notice to the vendor, which goes out moments after filing (the scheduled "
            f"check, every {_check_interval()}, sends one that is late). The contest period "
            "starts then."
        )
    elif state == ClaimState.VENDOR_NOTIFIED and deadline is not None and now < deadline:
        waiting_for = (
            f"The vendor's contest period, until {deadline_text}: {vendor.name} may contest "
            "the claim or release voluntarily. Then the notary reviews it."
        )
    elif state == ClaimState.VENDOR_NOTIFIED:
        waiting_for = (
            f"The scheduled check that moves it on to the notary (it runs every "
            f"{_check_interval()}): the contest period ended on {deadline_text} without a contest."
        )
    elif state in (ClaimState.CONTESTED, ClaimState.UNCONTESTED):
        waiting_for = "The notary's review, which starts at once."
    elif state == ClaimState.UNDER_REVIEW:
        waiting_for = (
            "The notary's decision: approve the release, reject the claim, or ask the "
            "claimant for more evidence."
        )
    elif state == ClaimState.EVIDENCE_REQUESTED:
        waiting_for = (
            f"Further evidence from {claim.claimant.name}, as the notary asked; the review "
            "resumes once it is added."
        )
    elif state == ClaimState.APPROVED:
        waiting_for = "The hand-over of the release the notary approved, which follows at once."
    else:
        waiting_for = f"Nothing: the claim is {claim.get_state_display().lower()}, which is final."
        final = True
    # What is left of the period matters while the vendor may contest; once the claim
    # moved on before its deadline (a contest, a voluntary release) it says nothing.
    counting = state == ClaimState.VENDOR_NOTIFIED or (deadline is not None and now >= deadline)
    return ClaimWait(
        waiting_for=waiting_for,
        deadline=deadline,
        deadline_text=deadline_text,
        time_left=contest_time_left(claim=claim, now=now) if counting else "",
        final=final,
    )
