"""What a subscription period costs: one computation for the page that shows the
price and the service that invoices it, so the two can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings

from accounts.models import Organisation
from billing.fees import escrow_fee, percent_label, prorated
from billing.invoicing import Line
from billing.models import LicenceAgreement
from billing.periods import first_period_pieces, licence_year_days
from billing.vat import invoice_amounts, vat_for


@dataclass(frozen=True)
class Quote:
    """A period's price as it will be invoiced: its lines, net, VAT and total."""

    period: tuple[date, date]
    lines: tuple[Line, ...]
    currency: str
    net: Decimal
    vat_rate: Decimal
    vat: Decimal
    total: Decimal
    vat_note: str

    @property
    def last_day(self) -> date:
        """The last day covered (a period's end is the first day it no longer covers)."""
        return self.period[1] - timedelta(days=1)

    @property
    def vat_label(self) -> str:
        return percent_label(self.vat_rate)

    @property
    def is_free(self) -> bool:
        """Nothing to pay: no invoice is issued, and cover starts at once (rule 6)."""
        return self.total == 0


def period_line(*, licence: LicenceAgreement, fee_rate: Decimal, piece: tuple[date, date]) -> Line:
    """One invoice line for ``piece`` of a licence year: the yearly escrow fee, pro rata
    to the days of that licence year when the piece is shorter than the year."""
    fee = escrow_fee(annual_licence_fee=licence.annual_fee, rate=fee_rate)
    days = (piece[1] - piece[0]).days
    year_days = licence_year_days(licence_start=licence.start_date, day=piece[0])
    share = "" if days == year_days else f", {days} of {year_days} days"
    last = piece[1] - timedelta(days=1)
    return Line(
        f"Software escrow for {licence.product.name}, {piece[0]:%d %b %Y} to {last:%d %b %Y}: "
        f"{percent_label(fee_rate)} of the annual licence fee of {licence.currency} "
        f"{licence.annual_fee}{share}",
        prorated(amount=fee, days=days, of_days=year_days),
    )


def quote_for(
    *,
    customer: Organisation,
    vendor: Organisation,
    currency: str,
    lines: list[Line],
    period: tuple[date, date],
) -> Quote:
    """Net, VAT and total of ``lines`` exactly as ``invoice_issue`` will compute them."""
    decision = vat_for(
        country=customer.country,
        vat_number=customer.vat_number,
        vendor_country=vendor.country,
        domestic_rate=settings.ESCROW_DOMESTIC_VAT_RATE,
    )
    amounts = invoice_amounts(line_amounts=[line.amount for line in lines], rate=decision.rate)
    return Quote(
        period=period,
        lines=tuple(
            Line(line.description, amount)
            for line, amount in zip(lines, amounts.lines, strict=True)
        ),
        currency=currency,
        net=amounts.net,
        vat_rate=decision.rate,
        vat=amounts.vat,
        total=amounts.total,
        vat_note=decision.note,
    )


def first_period_quote(*, licence: LicenceAgreement, fee_rate: Decimal, today: date) -> Quote:
    """The first period of a subscription starting ``today`` and its price
    (docs/billing.md, rule 1): prorated to the next licence anniversary, plus the
    following year when that stub is no longer than the renewal notice."""
    pieces = first_period_pieces(
        licence_start=licence.start_date,
        today=today,
        notice_days=settings.ESCROW_RENEWAL_NOTICE_DAYS,
    )
    return quote_for(
        customer=licence.customer,
        vendor=licence.product.vendor,
        currency=licence.currency,
        lines=[period_line(licence=licence, fee_rate=fee_rate, piece=piece) for piece in pieces],
        period=(pieces[0][0], pieces[-1][1]),
    )
