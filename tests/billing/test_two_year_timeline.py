"""Two years and more of one subscription, with the clock moved by time-machine and the
real billing jobs of the schedule run at every step (docs/billing.md): a prorated first
period across a year end, a renewal invoiced on notice, a lapse, a late payment that
reactivates, a renewal paid on time, and a confirmed cancellation whose cover runs to
its period's end. Every invoice's number, period and amount is computed by hand."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import Invoice, Subscription
from escrow.services.claims import claim_eligibility_problem
from records.models import AuditEntry, Notification
from tests.billing.lifecycle import at, run_billing_schedule
from tests.conftest import signed_in_client
from tests.factories import make_acknowledged_deposit

NO_RIGHT = "has no active escrow subscription for Ledger Pro"


def record_payment(number: str, amount: str, received: str) -> None:
    call_command("record_payment", number, amount, "--date", received, stdout=io.StringIO())


def invoices() -> list[tuple[str, date | None, date | None, Decimal]]:
    return [
        (invoice.number, invoice.period_start, invoice.period_end, invoice.total)
        for invoice in Invoice.objects.order_by("year", "sequence")
    ]


@pytest.fixture(autouse=True)
def _terms(settings) -> None:
    settings.ESCROW_PAYMENT_TERMS_DAYS = 30
    settings.ESCROW_PAYMENT_GRACE_DAYS = 30
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30


def test_two_years_of_a_subscription(licence, subscriber, product, notary) -> None:
    # The licence runs from 1 January 2026 at EUR 10,000.00 a year: escrow is EUR 500.00
    # a year, plus 21% Dutch VAT.
    assert (licence.start_date, licence.annual_fee) == (date(2026, 1, 1), Decimal("10000.00"))
    with at(2026, 11, 1):
        make_acknowledged_deposit(product=product, notary=notary)

    def right_to_claim() -> str:
        return claim_eligibility_problem(organisation=licence.customer, product=product)

    subscribe_url = f"/portal/licences/{licence.pk}/subscribe/"

    # 2 December 2026: 30 days to the anniversary, no longer than the notice, so the first
    # period is the stub (500 x 30/365 = 41.10) and all of 2027 (500.00).
    with at(2026, 12, 2):
        customer = signed_in_client(subscriber)
        page = customer.get(subscribe_url).content.decode()
        assert "from 2 December 2026 until 31 December 2027" in page
        assert "EUR 654.73" in page  # 541.10 + 113.63 VAT
        customer.post(subscribe_url, {"accept_terms": "on"})
        run_billing_schedule()
    subscription = Subscription.objects.get()
    first = Invoice.objects.get()
    assert (first.number, first.issued_on, first.due_on) == (
        "2026-00001",
        date(2026, 12, 2),
        date(2027, 1, 1),
    )
    assert invoices() == [("2026-00001", date(2026, 12, 2), date(2028, 1, 1), Decimal("654.73"))]

    # Paid on 21 December: active for the invoiced period; no renewal falls due.
    with at(2026, 12, 21):
        record_payment("2026-00001", "654.73", "2026-12-21")
        run_billing_schedule()
        assert right_to_claim() == ""
    subscription.refresh_from_db()
    assert (subscription.state, subscription.period_start, subscription.period_end) == (
        "active",
        date(2026, 12, 2),
        date(2028, 1, 1),
    )

    # Across the year end, nothing happens: 2027 is paid for.
    for day in [date(2027, 1, 1), date(2027, 1, 15), date(2027, 12, 1)]:
        with at(day.year, day.month, day.day):
            run_billing_schedule()
    assert len(invoices()) == 1

    # 2 December 2027, 30 days before the period ends: the renewal for 2028, numbered in 2027.
    with at(2027, 12, 2):
        run_billing_schedule()
        run_billing_schedule()  # once only, however often the job runs
    renewal_2028 = Invoice.objects.get(purpose="renewal")
    assert (renewal_2028.issued_on, renewal_2028.due_on) == (date(2027, 12, 2), date(2028, 1, 1))
    assert invoices()[1] == ("2027-00001", date(2028, 1, 1), date(2029, 1, 1), Decimal("605.00"))

    # Unpaid. The grace runs to 31 January 2028; on 1 February it lapses.
    with at(2028, 1, 31):
        run_billing_schedule()
        assert right_to_claim() == ""
    with at(2028, 2, 1):
        run_billing_schedule()
        assert NO_RIGHT in right_to_claim()
    subscription.refresh_from_db()
    assert subscription.state == "lapsed"

    # Subscribing again is refused: it would bill 2028 a second time.
    with at(2028, 2, 5):
        customer = signed_in_client(subscriber)
        refused = customer.post(subscribe_url, {"accept_terms": "on"}).content.decode()
    assert "pay invoice 2027-00001 to reactivate it" in refused
    assert Subscription.objects.count() == 1 and len(invoices()) == 2

    # Paid late on 10 February: active again for exactly the year that invoice paid for.
    with at(2028, 2, 10):
        record_payment("2027-00001", "605.00", "2028-02-10")
        run_billing_schedule()
        assert right_to_claim() == ""
    subscription.refresh_from_db()
    assert (subscription.state, subscription.period_start, subscription.period_end) == (
        "active",
        date(2028, 1, 1),
        date(2029, 1, 1),
    )
    assert Notification.objects.filter(kind="subscription_reactivated").count() == 1

    # The 2029 renewal is invoiced on notice (a 2028 number) and paid on time.
    with at(2028, 12, 2):
        run_billing_schedule()
    assert invoices()[2] == ("2028-00001", date(2029, 1, 1), date(2030, 1, 1), Decimal("605.00"))
    with at(2028, 12, 10):
        record_payment("2028-00001", "605.00", "2028-12-10")
        run_billing_schedule()
    subscription.refresh_from_db()
    assert (subscription.period_start, subscription.period_end) == (
        date(2029, 1, 1),
        date(2030, 1, 1),
    )

    # 1 March 2029: cancelled, with confirmation. Cover runs to 31 December 2029.
    cancel_url = f"/portal/subscriptions/{subscription.pk}/cancel/"
    with at(2029, 3, 1):
        customer = signed_in_client(subscriber)
        assert "continues until 31 December 2029" in customer.get(cancel_url).content.decode()
        customer.post(cancel_url, {"confirm": "on"})
        run_billing_schedule()
    subscription.refresh_from_db()
    assert (subscription.state, subscription.is_ending) == ("active", True)

    # No renewal for 2030; still covered on the last day; ended by the schedule after it.
    with at(2029, 12, 2):
        run_billing_schedule()
    with at(2029, 12, 31, 23):
        run_billing_schedule()
        assert right_to_claim() == ""
    with at(2030, 1, 1, 0):
        run_billing_schedule()
        assert NO_RIGHT in right_to_claim()
    with at(2030, 3, 1):
        run_billing_schedule()
    subscription.refresh_from_db()
    assert subscription.state == "cancelled"

    assert invoices() == [
        ("2026-00001", date(2026, 12, 2), date(2028, 1, 1), Decimal("654.73")),
        ("2027-00001", date(2028, 1, 1), date(2029, 1, 1), Decimal("605.00")),
        ("2028-00001", date(2029, 1, 1), date(2030, 1, 1), Decimal("605.00")),
    ]
    assert all(invoice.amount_due() == 0 for invoice in Invoice.objects.all())
    steps = list(
        AuditEntry.objects.filter(action__startswith="subscription.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert steps == [
        "subscription.request",
        "subscription.await_payment",
        "subscription.activate",
        "subscription.lapse",
        "subscription.reactivate",
        "subscription.renew",
        "subscription.cancel_at_period_end",
        "subscription.end",
    ]
