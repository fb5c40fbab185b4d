"""What a general data export costs: the first in 12 months is free, a further one costs
ESCROW_EXPORT_FEE; a failed export does not count."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from escrow.models import DataExport
from escrow.services.exports import export_build, export_fail, export_fee_for, export_request


@pytest.fixture(autouse=True)
def fee(settings) -> Decimal:
    settings.ESCROW_EXPORT_FEE = Decimal("99.50")
    return settings.ESCROW_EXPORT_FEE


def test_the_first_export_is_free(subscriber) -> None:
    assert export_fee_for(subscriber.organisation) == Decimal("0.00")


def test_a_second_export_within_twelve_months_costs_the_configured_fee(subscriber) -> None:
    first = export_request(actor=subscriber)
    assert first.fee == Decimal("0.00")
    export_build(export=first)
    first.refresh_from_db()
    assert first.state == "ready"
    assert export_fee_for(subscriber.organisation) == Decimal("99.50")


def test_an_export_still_being_built_counts(subscriber) -> None:
    export_request(actor=subscriber)
    assert export_fee_for(subscriber.organisation) == Decimal("99.50")


def test_a_failed_export_does_not_count(subscriber) -> None:
    export = export_request(actor=subscriber)
    export_fail(export=export, problem="the primary site was unreachable")
    export.refresh_from_db()
    assert export.state == "failed"
    assert export_fee_for(subscriber.organisation) == Decimal("0.00")


def test_an_export_older_than_twelve_months_does_not_count(subscriber) -> None:
    export = export_request(actor=subscriber)
    export_build(export=export)
    DataExport.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(days=366))
    assert export_fee_for(subscriber.organisation) == Decimal("0.00")
    DataExport.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(days=364))
    assert export_fee_for(subscriber.organisation) == Decimal("99.50")


def test_another_organisations_export_does_not_count(subscriber, other_customer) -> None:
    export_request(actor=other_customer)
    assert export_fee_for(other_customer.organisation) == Decimal("99.50")
    assert export_fee_for(subscriber.organisation) == Decimal("0.00")
