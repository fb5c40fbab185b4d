"""Rule 1 of docs/billing.md: the first period runs from the day of subscribing to the
next licence anniversary, priced by the day; a stub no longer than the renewal notice
also carries the following full year. Every figure below is computed by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.fees import percent_label, prorated
from billing.periods import first_period_pieces, period_containing, renewal_period
from billing.pricing import first_period_quote
from tests.factories import LicenceFactory

JAN_1 = date(2026, 1, 1)
JAN_1_2027 = date(2027, 1, 1)
JAN_1_2028 = date(2028, 1, 1)


@pytest.mark.parametrize(
    ("today", "pieces"),
    [
        # 30 days to 1 January: no longer than the 30-day notice, so the next year joins.
        (date(2026, 12, 2), [(date(2026, 12, 2), JAN_1_2027), (JAN_1_2027, date(2028, 1, 1))]),
        # 31 days: longer than the notice, the stub alone.
        (date(2026, 12, 1), [(date(2026, 12, 1), date(2027, 1, 1))]),
        # On the anniversary: one whole licence year.
        (date(2027, 1, 1), [(date(2027, 1, 1), date(2028, 1, 1))]),
        # Mid-year.
        (date(2027, 3, 15), [(date(2027, 3, 15), date(2028, 1, 1))]),
        # The last day of a licence year: one day, plus the next year.
        (date(2027, 12, 31), [(date(2027, 12, 31), JAN_1_2028), (JAN_1_2028, date(2029, 1, 1))]),
    ],
)  # fmt: skip
def test_the_first_period_runs_to_the_next_anniversary(today, pieces, settings) -> None:
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    assert first_period_pieces(licence_start=JAN_1, today=today, notice_days=30) == pieces


def test_before_the_licence_starts_the_first_period_is_its_first_year() -> None:
    pieces = first_period_pieces(
        licence_start=date(2027, 6, 1), today=date(2027, 3, 15), notice_days=30
    )
    assert pieces == [(date(2027, 6, 1), date(2028, 6, 1))]


def test_a_29_february_licence_keeps_its_anniversaries() -> None:
    leap = date(2024, 2, 29)
    assert period_containing(licence_start=leap, today=date(2027, 3, 1)) == (
        date(2027, 2, 28),
        date(2028, 2, 29),
    )
    assert renewal_period(licence_start=leap, current_end=date(2028, 2, 29)) == (
        date(2028, 2, 29),
        date(2029, 2, 28),
    )


@pytest.mark.parametrize(
    ("days", "of_days", "amount"),
    [
        (30, 365, Decimal("41.10")),  # 500 x 30/365 = 41.0958...
        (292, 365, Decimal("400.00")),  # 500 x 0.8
        (90, 366, Decimal("122.95")),  # a licence year with 29 February: 122.9508...
        (365, 365, Decimal("500.00")),
        (366, 366, Decimal("500.00")),
    ],
)
def test_a_stub_is_priced_by_the_day(days, of_days, amount) -> None:
    assert prorated(amount=Decimal("500.00"), days=days, of_days=of_days) == amount


def test_prorating_rounds_half_up_to_the_cent() -> None:
    assert prorated(amount=Decimal("0.05"), days=1, of_days=2) == Decimal("0.03")  # 0.025
    with pytest.raises(ValueError, match="Cannot prorate 400 days"):
        prorated(amount=Decimal("500.00"), days=400, of_days=365)


def test_subscribing_on_2_december_bills_the_stub_and_the_next_year(
    organisation_a, product, settings
) -> None:
    """Edge 4: subscribed on 2 December, it was billed for 1 January to 31 December of the
    same year, renewing on 1 January: a year's fee for a month of cover."""
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    licence = LicenceFactory(customer=organisation_a, product=product)  # 10,000.00 from 1 Jan
    quote = first_period_quote(licence=licence, fee_rate=Decimal("0.05"), today=date(2026, 12, 2))
    assert quote.period == (date(2026, 12, 2), date(2028, 1, 1))
    assert quote.last_day == date(2027, 12, 31)
    assert [line.amount for line in quote.lines] == [Decimal("41.10"), Decimal("500.00")]
    assert "02 Dec 2026 to 31 Dec 2026" in quote.lines[0].description
    assert "30 of 365 days" in quote.lines[0].description
    assert "01 Jan 2027 to 31 Dec 2027" in quote.lines[1].description
    assert (quote.net, quote.vat, quote.total) == (
        Decimal("541.10"),
        Decimal("113.63"),  # 21% of 541.10 = 113.631
        Decimal("654.73"),
    )
    assert (quote.currency, quote.vat_label, quote.is_free) == ("EUR", "21%", False)


def test_subscribing_mid_year_bills_the_rest_of_the_licence_year(organisation_a, product) -> None:
    licence = LicenceFactory(customer=organisation_a, product=product)
    quote = first_period_quote(licence=licence, fee_rate=Decimal("0.05"), today=date(2027, 3, 15))
    assert quote.period == (date(2027, 3, 15), date(2028, 1, 1))
    assert [line.amount for line in quote.lines] == [Decimal("400.00")]  # 292 of 365 days
    assert (quote.net, quote.vat, quote.total) == (
        Decimal("400.00"),
        Decimal("84.00"),
        Decimal("484.00"),
    )


@pytest.mark.parametrize(
    ("rate", "label"),
    [
        (Decimal("0.085"), "8.5%"),
        (Decimal("0.0850"), "8.5%"),
        (Decimal("0.21"), "21%"),
        (Decimal("0.2100"), "21%"),
        (Decimal("0.077"), "7.7%"),
        (Decimal("0"), "0%"),
        (Decimal("0.0000"), "0%"),
        (Decimal("0.0825"), "8.25%"),
        (Decimal("0.1"), "10%"),
        (Decimal("1"), "100%"),
    ],
)
def test_a_rate_is_labelled_exactly_never_rounded(rate, label) -> None:
    """Edge 12: the VAT label rounded 8.5% to "8%"."""
    assert percent_label(rate) == label
