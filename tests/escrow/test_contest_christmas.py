"""A claim filed just before Christmas: the vendor's contest period skips Christmas and
New Year, is told on the vendor's clock, and the scheduled check moves the claim on
to the notary at the deadline, not a second earlier, and exactly once.

The clock is moved with time-machine; everything else is real (database, services,
the Celery task run in-process, e-mail through Django's locmem backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from escrow.links import vendor_claim_link
from escrow.models import ReleaseClaim
from escrow.services.claims import claim_contest_deadline, claims_contest_elapsed
from escrow.tasks import claims_contest_elapsed_task
from records.models import AuditEntry, Notification
from tests.conftest import signed_in_client
from tests.factories import EVIDENCE_PDF, make_acknowledged_deposit, make_active_subscription

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
# Filed Wednesday 23 December 2026, 10:00 in Amsterdam. Ten business days in the
# Netherlands: Thu 24 (1); Fri 25 Christmas; weekend (Sat 26 is also a holiday); Mon 28
# (2), Tue 29 (3), Wed 30 (4), Thu 31 (5); Fri 1 January New Year; weekend; Mon 4 (6),
# Tue 5 (7), Wed 6 (8), Thu 7 (9), Fri 8 January 2027 (10) at 10:00 CET = 09:00 UTC.
FILED = datetime(2026, 12, 23, 10, 0, tzinfo=AMSTERDAM)
DEADLINE = datetime(2027, 1, 8, 9, 0, tzinfo=UTC)
DEADLINE_TEXT = "Friday 8 January 2027, 10:00 CET (Europe/Amsterdam)"


@pytest.fixture
def christmas_claim(
    vendor,
    licence,
    product,
    subscriber,
    staff,
    notary,
    notary_identity,
    mailoutbox,
    django_capture_on_commit_callbacks,
) -> ReleaseClaim:
    vendor.time_zone = "Europe/Amsterdam"
    vendor.save(update_fields=["time_zone"])
    with time_machine.travel(FILED - timedelta(days=30), tick=False):
        make_active_subscription(licence=licence, actor=subscriber, staff=staff)
        make_acknowledged_deposit(product=product, notary=notary)
    mailoutbox.clear()
    with time_machine.travel(FILED, tick=False), django_capture_on_commit_callbacks(execute=True):
        filed = signed_in_client(subscriber).post(
            "/portal/claims/",
            {
                "product": product.pk,
                "condition": "insolvency",
                "statement": "Acme Software B.V. was declared bankrupt on 21 December.",
                "documents": [SimpleUploadedFile("ruling.pdf", EVIDENCE_PDF)],
            },
        )
    assert filed.status_code == 302
    return ReleaseClaim.objects.get()


def moves_at(moment: datetime) -> list[int]:
    """Run the scheduled check with the clock at ``moment``; the claims it moved."""
    with time_machine.travel(moment, tick=False):
        return [claim.pk for claim in claims_contest_elapsed(now=moment)]


def test_the_contest_period_skips_christmas_and_new_year_and_ends_exactly_once(
    christmas_claim, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    claim = christmas_claim
    assert claim.state == "vendor_notified"
    assert claim.contest_deadline == DEADLINE
    assert claim_contest_deadline(claim=claim, start=FILED) == DEADLINE
    # The vendor's own calendar counts: a country without one skips weekends only.
    vendor = claim.product.vendor
    vendor.country = "ZZ"  # unknown to the holidays package: weekends only
    assert claim_contest_deadline(claim=claim, start=FILED) == DEADLINE - timedelta(days=2)

    # Christmas, New Year, the weekday before the deadline, one second before it: waits.
    for moment in [
        datetime(2026, 12, 25, 12, 0, tzinfo=AMSTERDAM),
        datetime(2027, 1, 1, 12, 0, tzinfo=AMSTERDAM),
        datetime(2027, 1, 6, 9, 0, tzinfo=UTC),  # weekends-only counting would end here
        datetime(2027, 1, 7, 9, 0, tzinfo=UTC),  # the business day before
        DEADLINE - timedelta(seconds=1),
    ]:
        assert moves_at(moment) == [], moment
        claim.refresh_from_db()
        assert claim.state == "vendor_notified"

    # At the deadline the real task (as beat or the embedded scheduler runs it) moves it.
    with (
        time_machine.travel(DEADLINE, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert claims_contest_elapsed_task() == 1
    claim.refresh_from_db()
    assert claim.state == "under_review"
    # Later runs find nothing to do: it moved exactly once.
    assert moves_at(DEADLINE + timedelta(minutes=15)) == []
    assert moves_at(DEADLINE + timedelta(days=3)) == []
    history = AuditEntry.objects.filter(object_id=str(claim.pk))
    assert history.filter(action="releaseclaim.mark_uncontested").count() == 1
    assert history.filter(action="releaseclaim.start_review").count() == 1
    ready = Notification.objects.filter(kind=Notification.Kind.RELEASE_CLAIM_READY)
    assert sorted(ready.values_list("audience", flat=True)) == ["notaries", "organisation"]


def test_every_mail_gives_the_deadline_on_the_vendor_s_clock(
    christmas_claim, vendor, subscriber, mailoutbox
) -> None:
    by_subject = {message.subject: message for message in mailoutbox}
    vendor_mail = by_subject[
        "[Software Escrow] Release claim for Ledger Pro by Northwind Logistics B.V."
    ]
    assert vendor_mail.to == [vendor.contact_email]
    assert f"contest it until {DEADLINE_TEXT}" in vendor_mail.body
    assert "UTC" not in vendor_mail.body
    receipt = next(m for m in mailoutbox if "is filed" in m.subject)
    assert subscriber.email in receipt.to
    assert f"may contest it until {DEADLINE_TEXT}" in receipt.body


def test_the_pages_show_the_deadline_and_the_time_left_on_the_vendor_s_clock(
    christmas_claim, subscriber, notary
) -> None:
    claim = christmas_claim
    # Christmas Eve 15:00 in Amsterdam: ahead are Mon 28 to Thu 7 January (8 business
    # days, to Thursday 7 January 15:00), then 19 hours to Friday 10:00.
    with time_machine.travel(datetime(2026, 12, 24, 15, 0, tzinfo=AMSTERDAM), tick=False):
        for page in (
            signed_in_client(subscriber).get(f"/portal/claims/{claim.pk}/"),
            signed_in_client(notary).get(f"/notary/claims/{claim.pk}/"),
        ):
            body = page.content.decode()
            assert DEADLINE_TEXT in body
            assert "8 business days, 19 hours left" in body
            assert "The vendor&#x27;s contest period, until" in body
        vendor_page = Client().get(vendor_claim_link(claim=claim)).content.decode()
        assert f"You may contest until {DEADLINE_TEXT} (8 business days, 19 hours left)" in (
            vendor_page
        )
    # Two days after the deadline, before the check ran: the page says what it waits for.
    with time_machine.travel(DEADLINE + timedelta(days=2), tick=False):
        body = signed_in_client(notary).get(f"/notary/claims/{claim.pk}/").content.decode()
    assert "ended 2 days ago" in body
    assert "The scheduled check that moves it on to the notary (it runs every 15 minutes)" in body
