"""Money due or settled is computed in the query: ``Invoice.objects.with_amounts()``
agrees with ``Invoice.amount_due()`` for every kind of history, in one query."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from accounts.models import Organisation
from billing.invoicing import Line, credit_note_issue, invoice_issue
from billing.models import Invoice, Payment, Refund
from tests.factories import OrganisationFactory, UserFactory, VendorFactory


def _invoice(customer: Organisation, vendor: Organisation, amount: str) -> Invoice:
    return invoice_issue(
        customer=customer,
        vendor=vendor,
        currency="EUR",
        lines=[Line("Item", Decimal(amount))],
        purpose=Invoice.Purpose.DATA_EXPORT,
        actor=None,
    )


@pytest.mark.django_db
def test_amounts_in_the_query_match_the_per_invoice_amounts(
    django_assert_num_queries: Any,
) -> None:
    customer, vendor = OrganisationFactory(), VendorFactory()
    staff = UserFactory(role="staff", organisation=None)
    unpaid = _invoice(customer, vendor, "100.00")
    paid = _invoice(customer, vendor, "200.00")
    Payment.objects.create(invoice=paid, amount=Decimal("120.00"), received_on=date(2026, 1, 5))
    Payment.objects.create(
        invoice=paid, amount=paid.total - Decimal("120.00"), received_on=date(2026, 1, 6)
    )
    credited_after_payment = _invoice(customer, vendor, "50.00")
    Payment.objects.create(
        invoice=credited_after_payment,
        amount=credited_after_payment.total,
        received_on=date(2026, 2, 1),
    )
    credit_note_issue(invoice=credited_after_payment, reason="Export cancelled", actor=None)
    Refund.objects.create(
        invoice=credited_after_payment,
        amount=Decimal("20.00"),
        paid_on=date(2026, 3, 1),
        reason="Part refunded",
        recorded_by=staff,
    )
    expected = {invoice.pk: invoice.amount_due() for invoice in Invoice.objects.all()}
    assert expected[unpaid.pk] == unpaid.total > 0
    assert expected[paid.pk] == Decimal("0.00")
    assert expected[credited_after_payment.pk] == Decimal("20.00") - credited_after_payment.total

    with django_assert_num_queries(1):
        rows = list(Invoice.objects.with_amounts())
    assert {row.pk: row.due for row in rows} == expected
    by_pk = {row.pk: row for row in rows}
    assert by_pk[paid.pk].paid == paid.total
    assert by_pk[credited_after_payment.pk].credited == credited_after_payment.total
    assert by_pk[credited_after_payment.pk].refunded == Decimal("20.00")
