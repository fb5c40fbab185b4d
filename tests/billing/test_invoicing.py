from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from billing import invoicing
from billing.invoicing import Line, credit_note_issue, invoice_issue
from billing.models import Invoice, LicenceAgreement, Payment, Subscription
from billing.payments import PaymentRefused, payment_record
from billing.services import (
    subscription_subscribe,
    subscriptions_lapse_overdue,
    subscriptions_renew_due,
)
from billing.vat import invoice_amounts
from records.models import AuditEntry, Notification
from tests.conftest import skip_or_fail
from tests.factories import OrganisationFactory


@pytest.fixture(autouse=True)
def _on_the_licence_anniversary() -> Iterator[None]:
    """The licence starts on 1 January: subscribed on an anniversary, the first period
    is one whole licence year at the whole yearly fee (docs/billing.md, rule 1; the
    prorated periods are in test_first_period.py)."""
    with time_machine.travel(datetime(2027, 1, 1, 10, tzinfo=UTC), tick=False):
        yield


def subscribe(licence: LicenceAgreement, user) -> tuple[Subscription, Invoice]:
    subscription = subscription_subscribe(licence=licence, actor=user, accept_terms=True)
    return subscription, subscription.invoices.get()


def pay(invoice: Invoice, staff=None, amount: Decimal | None = None) -> Payment:
    return payment_record(
        invoice_number=invoice.number,
        amount=amount if amount is not None else invoice.total,
        received_on=timezone.localdate(),
        actor=staff,
    )


def test_subscribing_needs_the_escrow_terms_accepted(licence, subscriber) -> None:
    with pytest.raises(ValidationError, match="own use only"):
        subscription_subscribe(licence=licence, actor=subscriber, accept_terms=False)
    assert not Subscription.objects.exists()
    assert not Invoice.objects.exists()


def test_subscribing_issues_the_first_invoice_at_five_percent_plus_vat(licence, subscriber) -> None:
    subscription, invoice = subscribe(licence, subscriber)
    assert subscription.state == "awaiting_payment"
    assert subscription.terms_accepted_by == subscriber
    assert invoice.number == f"{timezone.localdate().year}-00001"
    assert invoice.net_amount == Decimal("500.00")  # 5% of 10,000.00
    assert (invoice.vat_treatment, invoice.vat_rate) == ("domestic", Decimal("0.2100"))
    assert invoice.vat_amount == Decimal("105.00")
    assert invoice.total == Decimal("605.00")
    assert invoice.lines.get().amount == Decimal("500.00")
    assert Notification.objects.filter(
        kind="invoice_issued", organisation=licence.customer
    ).exists()
    assert AuditEntry.objects.filter(action="invoice.issue", actor=subscriber).exists()


@pytest.mark.parametrize(
    ("country", "vat_number", "treatment", "vat", "note"),
    [
        ("NL", "", "domestic", Decimal("105.00"), ""),
        ("DE", "DE123456789", "reverse_charge", Decimal("0.00"), "reverse-charged"),
        ("DE", "", "domestic", Decimal("105.00"), ""),
        ("US", "", "outside_eu", Decimal("0.00"), "outside the European Union"),
        ("CH", "", "outside_eu", Decimal("0.00"), "outside the European Union"),
    ],
)
def test_vat_follows_the_customer(
    vendor, product, country, vat_number, treatment, vat, note, subscriber
) -> None:
    vendor.country = "NL"
    vendor.save()
    customer = OrganisationFactory(country=country, vat_number=vat_number)
    invoice = invoice_issue(
        customer=customer,
        vendor=vendor,
        purpose=Invoice.Purpose.SUBSCRIPTION,
        lines=[Line("Escrow", Decimal("500.00"))],
        currency="EUR",
        actor=None,
    )
    assert invoice.vat_treatment == treatment
    assert invoice.vat_amount == vat
    assert invoice.total == Decimal("500.00") + vat
    assert note in invoice.vat_note


def test_full_payment_activates_the_subscription_for_the_licence_year(
    licence, subscriber, staff
) -> None:
    subscription, invoice = subscribe(licence, subscriber)
    pay(invoice, staff)
    subscription.refresh_from_db()
    assert subscription.state == "active"
    assert subscription.period_start <= timezone.localdate() < subscription.period_end
    assert subscription.period_start.month == licence.start_date.month
    assert subscription.period_start.day == licence.start_date.day
    assert invoice.amount_due() == Decimal("0.00")
    kinds = set(Notification.objects.values_list("kind", flat=True))
    assert {"invoice_issued", "payment_received", "subscription_activated"} <= kinds


@pytest.mark.parametrize("amount", [Decimal("605.01"), Decimal("604.99"), Decimal("1")])
def test_a_payment_of_another_amount_is_refused_and_nothing_is_recorded(
    licence, subscriber, amount
) -> None:
    subscription, invoice = subscribe(licence, subscriber)
    audit_count = AuditEntry.objects.count()
    with pytest.raises(PaymentRefused, match=r"605\.00 due"):
        pay(invoice, amount=amount)
    assert not Payment.objects.exists()
    subscription.refresh_from_db()
    assert subscription.state == "awaiting_payment"
    assert AuditEntry.objects.count() == audit_count


def test_payments_for_unknown_settled_or_credit_invoices_are_refused(
    licence, subscriber, staff
) -> None:
    with pytest.raises(PaymentRefused, match="no invoice '1999-00001'"):
        payment_record(
            invoice_number="1999-00001",
            amount=Decimal("1.00"),
            received_on=timezone.localdate(),
            actor=None,
        )
    _, invoice = subscribe(licence, subscriber)
    with pytest.raises(PaymentRefused, match="in the future"):
        payment_record(
            invoice_number=invoice.number,
            amount=invoice.total,
            received_on=timezone.localdate() + timedelta(days=1),
            actor=None,
        )
    pay(invoice)
    with pytest.raises(PaymentRefused, match="paid already"):
        pay(invoice)
    note = credit_note_issue(invoice=invoice, reason="goodwill", actor=staff)
    with pytest.raises(PaymentRefused, match="credit note"):
        payment_record(
            invoice_number=note.number,
            amount=Decimal("1.00"),
            received_on=timezone.localdate(),
            actor=None,
        )
    assert Payment.objects.count() == 1


def test_an_issued_invoice_is_never_edited(licence, subscriber) -> None:
    _, invoice = subscribe(licence, subscriber)
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(total=Decimal("1.00"))
    invoice.refresh_from_db()
    assert invoice.total == Decimal("605.00")


def test_a_new_licence_fee_changes_the_next_invoice_never_an_issued_one(
    licence, subscriber, staff
) -> None:
    subscription, invoice = subscribe(licence, subscriber)
    pay(invoice, staff)
    LicenceAgreement.objects.filter(pk=licence.pk).update(annual_fee=Decimal("20000.00"))
    subscription.refresh_from_db()
    renewal = subscriptions_renew_due(today=subscription.period_end - timedelta(days=10))[0]
    invoice.refresh_from_db()
    assert invoice.net_amount == Decimal("500.00")
    assert renewal.net_amount == Decimal("1000.00")
    assert renewal.period_start == subscription.period_end


def test_a_credit_note_cancels_what_is_due_with_its_own_number(licence, subscriber, staff) -> None:
    _, invoice = subscribe(licence, subscriber)
    note = credit_note_issue(invoice=invoice, reason="wrong licence fee", actor=staff)
    assert note.kind == "credit_note"
    assert note.number != invoice.number
    assert note.sequence == invoice.sequence + 1
    assert (note.net_amount, note.vat_amount, note.total) == (
        Decimal("-500.00"),
        Decimal("-105.00"),
        Decimal("-605.00"),
    )
    assert invoice.amount_due() == Decimal("0.00")
    with pytest.raises(ValidationError, match="credited in full already"):
        credit_note_issue(invoice=invoice, reason="again", actor=staff)
    with pytest.raises(ValidationError, match="needs a reason"):
        credit_note_issue(invoice=invoice, reason="  ", actor=staff)


def test_renewals_are_invoiced_once_within_the_notice_period(
    licence, subscriber, staff, settings
) -> None:
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    subscription, invoice = subscribe(licence, subscriber)
    pay(invoice, staff)
    subscription.refresh_from_db()
    end = subscription.period_end
    assert subscriptions_renew_due(today=end - timedelta(days=31)) == []
    first = subscriptions_renew_due(today=end - timedelta(days=30))
    again = subscriptions_renew_due(today=end - timedelta(days=20))
    assert len(first) == 1
    assert again == []
    assert Notification.objects.filter(kind="renewal_due").count() == 1
    pay(first[0], staff)
    subscription.refresh_from_db()
    assert (subscription.state, subscription.period_start) == ("active", end)
    assert subscription.period_end.year == end.year + 1


def test_an_unpaid_first_invoice_lapses_after_the_grace_period(
    licence, subscriber, settings
) -> None:
    settings.ESCROW_PAYMENT_GRACE_DAYS = 30
    subscription, invoice = subscribe(licence, subscriber)
    assert subscriptions_lapse_overdue(today=invoice.due_on + timedelta(days=30)) == []
    assert subscriptions_lapse_overdue(today=invoice.due_on + timedelta(days=31)) == [subscription]
    subscription.refresh_from_db()
    assert subscription.state == "lapsed"
    assert Notification.objects.filter(kind="subscription_lapsed").exists()
    assert subscriptions_lapse_overdue(today=invoice.due_on + timedelta(days=60)) == []


def test_an_unpaid_renewal_lapses_after_the_year_and_grace(
    licence, subscriber, staff, settings
) -> None:
    settings.ESCROW_PAYMENT_GRACE_DAYS = 14
    subscription, invoice = subscribe(licence, subscriber)
    pay(invoice, staff)
    subscription.refresh_from_db()
    subscriptions_renew_due(today=subscription.period_end - timedelta(days=1))
    assert subscriptions_lapse_overdue(today=subscription.period_end + timedelta(days=14)) == []
    assert subscriptions_lapse_overdue(today=subscription.period_end + timedelta(days=15)) == [
        subscription
    ]


def test_numbers_start_again_each_year_without_gaps(vendor, monkeypatch) -> None:
    customer = OrganisationFactory()
    numbers = []
    for day in [date(2026, 12, 30), date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 2)]:
        monkeypatch.setattr(invoicing.timezone, "localdate", lambda day=day: day)
        numbers.append(
            invoice_issue(
                customer=customer,
                vendor=vendor,
                purpose=Invoice.Purpose.DATA_EXPORT,
                lines=[Line("Export", Decimal("10.00"))],
                currency="EUR",
                actor=None,
            ).number
        )
    assert numbers == ["2026-00001", "2026-00002", "2027-00001", "2027-00002"]


@given(
    lines=st.lists(
        st.decimals(
            min_value=Decimal("-100000"),
            max_value=Decimal("1000000"),
            places=3,
            allow_nan=False,
            allow_infinity=False,
        ),
        min_size=1,
        max_size=8,
    ),
    basis_points=st.integers(min_value=0, max_value=3000),
)
def test_line_vat_and_total_add_up_to_the_cent(lines, basis_points) -> None:
    amounts = invoice_amounts(line_amounts=lines, rate=Decimal(basis_points) / 10_000)
    cent = Decimal("0.01")
    assert all(amount == amount.quantize(cent) for amount in amounts.lines)
    assert amounts.net == sum(amounts.lines, Decimal("0"))
    assert amounts.vat == amounts.vat.quantize(cent)
    assert amounts.total == amounts.net + amounts.vat
    assert abs(amounts.vat - amounts.net * Decimal(basis_points) / 10_000) <= Decimal("0.005")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_issuers_get_one_gapless_sequence(vendor) -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("concurrent invoice numbering is tested against PostgreSQL")
    customer = OrganisationFactory()
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def issuer() -> None:
        try:
            start.wait()
            for _ in range(10):
                invoice_issue(
                    customer=customer,
                    vendor=vendor,
                    purpose=Invoice.Purpose.DATA_EXPORT,
                    lines=[Line("Export", Decimal("10.00"))],
                    currency="EUR",
                    actor=None,
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=issuer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(Invoice.objects.values_list("sequence", flat=True)) == list(range(1, 61))


def test_the_record_payment_command(licence, subscriber) -> None:
    subscription, invoice = subscribe(licence, subscriber)
    out = io.StringIO()
    call_command(
        "record_payment",
        invoice.number,
        "605.00",
        "--date",
        timezone.localdate().isoformat(),
        stdout=out,
    )
    assert "Recorded EUR 605.00" in out.getvalue()
    subscription.refresh_from_db()
    assert subscription.state == "active"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["2026-99999", "10.00"], "no invoice '2026-99999'"),
        (["{number}", "ten"], "is not an amount"),
        (["{number}", "-5"], "is not a positive amount"),
        (["{number}", "605.001"], "more than two decimals"),
        (["{number}", "NaN"], "is not a positive amount"),
        (["{number}", "605.00", "--date", "yesterday"], "is not a date"),
        (["{number}", "600.00"], "605.00 due, not 600.00"),
    ],
)
def test_the_command_refuses_bad_input_and_records_nothing(
    licence, subscriber, arguments, message
) -> None:
    _, invoice = subscribe(licence, subscriber)
    with pytest.raises(CommandError, match=message):
        call_command(
            "record_payment",
            *[a.format(number=invoice.number) for a in arguments],
            stdout=io.StringIO(),
        )
    assert not Payment.objects.exists()
