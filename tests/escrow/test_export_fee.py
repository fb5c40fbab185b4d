"""What a general data export costs: one export in every 12 calendar months is free,
counted from the last free one; any other costs ESCROW_EXPORT_FEE. A paid export
does not restart the count, and a failed export never counts (edge 10 of issue 11)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine

from escrow.models import DataExport
from escrow.services.exports import (
    ExportFeeRequired,
    export_build,
    export_fail,
    export_fee_for,
    export_free_from,
    export_request,
)

FREE = Decimal("0.00")


@pytest.fixture(autouse=True)
def fee(settings) -> Decimal:
    settings.ESCROW_EXPORT_FEE = Decimal("99.50")
    return settings.ESCROW_EXPORT_FEE


def at(year: int, month: int, day: int, hour: int = 10):
    return time_machine.travel(datetime(year, month, day, hour, tzinfo=UTC), tick=False)


def exported(subscriber, *, accept_fee: bool = False) -> DataExport:
    export = export_build(export=export_request(actor=subscriber, accept_fee=accept_fee))
    assert export.state == "ready"
    return export


def test_the_first_export_is_free(subscriber) -> None:
    assert export_fee_for(subscriber.organisation) == FREE
    assert export_free_from(subscriber.organisation) is None


def test_a_paid_export_does_not_restart_the_twelve_months(subscriber, fee) -> None:
    organisation = subscriber.organisation
    with at(2026, 1, 15):
        assert exported(subscriber).fee == FREE
    with at(2026, 3, 1):
        assert export_fee_for(organisation) == fee
        assert exported(subscriber, accept_fee=True).fee == fee
    with at(2027, 1, 14, hour=23):
        assert export_fee_for(organisation) == fee
    # Twelve months after the free one, not after the paid one (1 March 2027).
    with at(2027, 1, 15, hour=0):
        assert export_free_from(organisation) == date(2027, 1, 15)
        assert export_fee_for(organisation) == FREE
        assert exported(subscriber).fee == FREE
    with at(2027, 3, 1):
        assert export_fee_for(organisation) == fee
        assert export_free_from(organisation) == date(2028, 1, 15)


def test_twelve_calendar_months_are_not_365_days(subscriber, fee) -> None:
    with at(2027, 3, 1):
        exported(subscriber)
    # 2028 is a leap year: 365 days after 1 March 2027 is 29 February 2028, one day
    # short of twelve calendar months.
    with at(2028, 2, 29, hour=23):
        assert export_fee_for(subscriber.organisation) == fee
    with at(2028, 3, 1, hour=0):
        assert export_fee_for(subscriber.organisation) == FREE


def test_a_free_export_on_29_february_makes_28_february_free_again(subscriber, fee) -> None:
    with at(2028, 2, 29):
        exported(subscriber)
    assert export_free_from(subscriber.organisation) == date(2029, 2, 28)
    with at(2029, 2, 27, hour=23):
        assert export_fee_for(subscriber.organisation) == fee
    with at(2029, 2, 28, hour=0):
        assert export_fee_for(subscriber.organisation) == FREE


def test_the_fee_refusal_names_the_day_the_next_free_export_is_possible(subscriber, fee) -> None:
    with at(2026, 1, 15):
        exported(subscriber)
    with at(2026, 6, 1), pytest.raises(ExportFeeRequired) as refused:
        export_request(actor=subscriber)
    assert refused.value.fee == fee
    assert "costs EUR 99.50" in str(refused.value)
    assert "from 2027-01-15" in str(refused.value)
    assert DataExport.objects.count() == 1


def test_an_export_still_being_built_counts(subscriber, fee) -> None:
    export_request(actor=subscriber)
    assert export_fee_for(subscriber.organisation) == fee


def test_a_failed_export_does_not_count(subscriber) -> None:
    export = export_request(actor=subscriber)
    export_fail(export=export, problem="the primary site was unreachable")
    export.refresh_from_db()
    assert export.state == "failed"
    assert export_fee_for(subscriber.organisation) == FREE


def test_a_failed_free_export_leaves_the_earlier_free_one_counting(subscriber, fee) -> None:
    with at(2026, 1, 15):
        exported(subscriber)
    with at(2026, 12, 1):
        # The one paid for in December fails: the January one still counts.
        paid = export_request(actor=subscriber, accept_fee=True)
        export_fail(export=paid, problem="disk full")
        assert export_fee_for(subscriber.organisation) == fee
    with at(2027, 1, 15):
        assert export_fee_for(subscriber.organisation) == FREE


def test_another_organisations_export_does_not_count(subscriber, other_customer, fee) -> None:
    export_request(actor=other_customer)
    assert export_fee_for(other_customer.organisation) == fee
    assert export_fee_for(subscriber.organisation) == FREE
