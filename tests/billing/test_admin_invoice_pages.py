"""Staff at month-end (issue 14, "What to build" 6): from an invoice's admin page staff
record a payment (amount, day received, bank reference) and issue a credit note, each
on a form followed by a confirmation; the same confirmation submitted twice records
once. The invoice page is read-only without edit controls and shows both parties as
readable fields; the list links each invoice's PDF and costs the same queries whatever
its length."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from django.core import signing
from django.db import DatabaseError, connection, transaction

from billing.invoicing import credit_note_issue, creditable_net
from billing.models import Invoice, Payment, Subscription
from billing.payments import PaymentRefused, parse_reference, payment_record, payment_refusal
from billing.services import subscription_cancel_at_period_end, subscriptions_renew_due
from records.models import AuditEntry
from tests.billing.lifecycle import at, pay, subscribe
from tests.conftest import signed_in_client
from tests.factories import LicenceFactory, OrganisationFactory, UserFactory

INVOICES = "/admin/billing/invoice/"


@pytest.fixture
def unpaid(licence, subscriber) -> tuple[Subscription, Invoice]:
    """Subscribed on 1 January 2027: EUR 500.00 + 21% VAT = EUR 605.00 due for 2027."""
    with at(2027, 1, 1):
        return subscribe(licence, subscriber)


def page(invoice: Invoice, what: str) -> str:
    return f"{INVOICES}{invoice.pk}/{what}/"


def text(response) -> str:
    return response.content.decode()


def shown(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def token_of(response) -> str:
    found = re.search(r'name="token" value="([^"]+)"', text(response))
    assert found, "the confirmation page carries its signed token"
    return found.group(1)


def review_payment(client, invoice: Invoice, **fields: str):
    data = {"amount": "605.00", "received_on": "2027-01-04", "reference": "", **fields}
    return client.post(page(invoice, "record-payment"), {**data, "review": "1"})


# Record a payment ------------------------------------------------------------------


def test_a_payment_is_recorded_with_its_day_and_reference_after_a_confirmation(
    unpaid, staff
) -> None:
    subscription, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        change = text(client.get(f"{INVOICES}{invoice.pk}/change/"))
        assert f'href="{page(invoice, "record-payment")}"' in change
        form = text(client.get(page(invoice, "record-payment")))
        assert 'value="605.00"' in form and 'value="2027-01-05"' in form  # the defaults
        assert 'type="date"' in form and 'max="2027-01-05"' in form and 'min="2027-01-01"' in form
        assert '<label for="id_reference">Bank reference:</label>' in form
        assert "Amount received (EUR)" in form

        confirm = review_payment(client, invoice, reference="  NL91 ABNA 0417  ")
        assert (
            f"Record EUR 605.00 received on 4 Jan 2027 for invoice {invoice.number}, "
            "reference NL91 ABNA 0417?"
        ) in text(confirm)
        assert "activates, renews or reactivates" in text(confirm)
        assert not Payment.objects.exists()  # nothing until confirmed

        done = client.post(
            page(invoice, "record-payment"),
            {"token": token_of(confirm), "confirm": "1"},
            follow=True,
        )
    assert f"Recorded EUR 605.00 received on 4 Jan 2027 for invoice {invoice.number}." in shown(
        done
    )
    payment = Payment.objects.get()
    assert (payment.amount, payment.received_on, payment.reference, payment.recorded_by) == (
        Decimal("605.00"),
        date(2027, 1, 4),
        "NL91 ABNA 0417",
        staff,
    )
    entry = AuditEntry.objects.get(action="payment.record")
    assert entry.details == {
        "amount": "605.00",
        "received_on": "2027-01-04",
        "reference": "NL91 ABNA 0417",
    }
    subscription.refresh_from_db()
    assert subscription.state == "active"
    assert "NL91 ABNA 0417" in text(done)  # the payments on the invoice page show it


def test_the_same_confirmation_submitted_twice_records_one_payment(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        token = token_of(review_payment(client, invoice, reference="X-1"))
        first = client.post(page(invoice, "record-payment"), {"token": token, "confirm": "1"})
        second = client.post(
            page(invoice, "record-payment"), {"token": token, "confirm": "1"}, follow=True
        )
    assert first.status_code == 302
    assert Payment.objects.count() == 1
    assert "nothing due" in shown(second)


def test_a_used_confirmation_is_refused_by_name_even_if_money_is_due_again(unpaid, staff) -> None:
    """The one-time key, not only "paid already", stops a replay: credit and re-invoice
    aside, the service refuses a confirmation key that recorded a payment before."""
    _, invoice = unpaid
    with at(2027, 1, 5):
        key = signing.loads(
            token_of(review_payment(signed_in_client(staff), invoice)),
            salt="billing.admin.record-payment",
        )["once"]
        from uuid import UUID

        payment_record(
            invoice_number=invoice.number,
            amount=Decimal("605.00"),
            received_on=date(2027, 1, 4),
            actor=staff,
            confirmation=UUID(hex=key),
        )
        second_invoice = another_invoice(invoice.subscription.licence)
        with pytest.raises(PaymentRefused, match="This confirmation was submitted before"):
            payment_record(
                invoice_number=second_invoice.number,
                amount=second_invoice.amount_due(),
                received_on=date(2027, 1, 5),
                actor=staff,
                confirmation=UUID(hex=key),
            )
    assert Payment.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"amount": "-605.00"}, "is not a positive amount"),
        ({"amount": "0"}, "is not a positive amount"),
        ({"amount": "1e30"}, "larger than any invoice can be"),
        ({"amount": "six hundred"}, "is not an amount; write it like 630.00"),
        ({"amount": "605.001"}, "has more than two decimals"),
        ({"amount": "600.00"}, "has EUR 605.00 due, not EUR 600.00"),
        ({"amount": "NaN"}, "is not a positive amount"),
        ({"received_on": "2027-01-06"}, "6 Jan 2027 is in the future"),
        ({"received_on": "2026-12-31"}, "is before the invoice&#x27;s date, 1 Jan 2027"),
        ({"received_on": "yesterday"}, "Enter a valid date"),
        ({"reference": "x" * 141}, "at most 140 characters"),
        ({"reference": "ok\x07"}, "cannot be printed"),
        ({"reference": "ok\x00"}, "Null characters are not allowed"),
    ],
)
def test_hostile_payment_input_is_refused_by_name_before_any_confirmation(
    unpaid, staff, fields, error
) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        response = review_payment(signed_in_client(staff), invoice, **fields)
    assert error in text(response)
    assert 'name="token"' not in text(response)  # no confirmation is offered
    assert not Payment.objects.exists()


def test_a_forged_or_foreign_confirmation_records_nothing(unpaid, staff, licence) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        forged = client.post(
            page(invoice, "record-payment"), {"token": "forged", "confirm": "1"}, follow=True
        )
        assert "altered or is not one of ours" in shown(forged)
        other_invoice = another_invoice(licence)
        token = token_of(
            review_payment(
                client,
                other_invoice,
                amount=f"{other_invoice.amount_due():.2f}",
                received_on="2027-01-05",
            )
        )
        foreign = client.post(
            page(invoice, "record-payment"), {"token": token, "confirm": "1"}, follow=True
        )
    assert f"not for invoice {invoice.number}" in shown(foreign)
    assert not Payment.objects.exists()


def test_an_hour_old_confirmation_records_nothing(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5, hour=9):
        client = signed_in_client(staff)
        token = token_of(review_payment(client, invoice))
    with at(2027, 1, 5, hour=11):
        late = client.post(
            page(invoice, "record-payment"), {"token": token, "confirm": "1"}, follow=True
        )
    assert "more than an hour old" in shown(late)
    assert not Payment.objects.exists()


def test_changing_a_reviewed_payment_goes_back_to_the_filled_in_form(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        response = signed_in_client(staff).post(
            page(invoice, "record-payment"),
            {"amount": "605.00", "received_on": "2027-01-03", "reference": "R-9", "change": "1"},
        )
    form = text(response)
    assert 'value="2027-01-03"' in form and 'value="R-9"' in form
    assert 'name="review"' in form and not Payment.objects.exists()


def test_a_paid_invoice_offers_no_payment_form(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        pay(invoice, on=date(2027, 1, 5))
        client = signed_in_client(staff)
        change = text(client.get(f"{INVOICES}{invoice.pk}/change/"))
        refused = client.get(page(invoice, "record-payment"), follow=True)
    assert "Record payment" not in change
    assert "has nothing due" in shown(refused)


def test_the_service_keeps_the_reference_and_refuses_a_bad_one(unpaid) -> None:
    _, invoice = unpaid
    assert parse_reference("  a\tb  c ") == "a b c"
    with pytest.raises(Exception, match="cannot be printed"):
        parse_reference("bad\u200b")
    with at(2027, 1, 5), pytest.raises(PaymentRefused, match="Nothing was recorded"):
        payment_record(
            invoice_number=invoice.number,
            amount=Decimal("605.00"),
            received_on=date(2027, 1, 5),
            actor=None,
            reference="y" * 200,
        )
    assert not Payment.objects.exists()


def test_a_payment_stays_immutable_after_the_reference_migration(unpaid) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        payment = pay(invoice, on=date(2027, 1, 5))
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(reference="changed")
    assert connection.vendor in ("sqlite", "postgresql")


# Credit notes ----------------------------------------------------------------------


def review_credit(client, invoice: Invoice, **fields: str):
    data = {"extent": "full", "net_amount": "", "reason": "wrong licence", **fields}
    return client.post(page(invoice, "credit-note"), {**data, "review": "1"})


def test_a_credit_note_is_issued_from_the_invoice_page_after_a_confirmation(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        pay(invoice, on=date(2027, 1, 5))
        change = text(client.get(f"{INVOICES}{invoice.pk}/change/"))
        assert f'href="{page(invoice, "credit-note")}"' in change
        form = text(client.get(page(invoice, "credit-note")))
        assert "<legend>What to credit</legend>" in form
        assert "Everything not yet credited: EUR 500.00 net, plus its VAT" in form
        confirm = review_credit(client, invoice)
        assert (
            "Issue a credit note of EUR -605.00 (EUR -500.00 net and EUR -105.00 VAT at 21%) "
            f"on invoice {invoice.number}, for the reason “wrong licence”?"
        ) in text(confirm)
        assert "EUR 605.00 will then be owed back" in text(confirm)
        assert not invoice.credit_notes.exists()
        token = token_of(confirm)
        done = client.post(
            page(invoice, "credit-note"), {"token": token, "confirm": "1"}, follow=True
        )
        again = client.post(
            page(invoice, "credit-note"), {"token": token, "confirm": "1"}, follow=True
        )
    note = invoice.credit_notes.get()
    assert (
        f"Credit note {note.number} issued for EUR -605.00 on invoice {invoice.number}."
        in shown(done)
    )
    assert note.lines.get().description == f"Credit for invoice {invoice.number}: wrong licence"
    assert "nothing left to credit" in shown(again)


def test_part_of_an_invoice_is_credited_and_a_double_submit_issues_one_note(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        confirm = review_credit(client, invoice, extent="part", net_amount="100.00")
        assert "Issue a credit note of EUR -121.00 (EUR -100.00 net" in text(confirm)
        assert "owed back" not in text(confirm)  # unpaid: nothing is owed back
        token = token_of(confirm)
        client.post(page(invoice, "credit-note"), {"token": token, "confirm": "1"})
        again = client.post(
            page(invoice, "credit-note"), {"token": token, "confirm": "1"}, follow=True
        )
    note = invoice.credit_notes.get()
    assert (note.net_amount, note.total) == (Decimal("-100.00"), Decimal("-121.00"))
    assert "Was the confirmation submitted twice? Nothing was issued" in shown(again)
    assert creditable_net(invoice) == Decimal("400.00")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"reason": ""}, "This field is required"),
        ({"extent": "part"}, "Enter the net amount to credit"),
        ({"extent": "part", "net_amount": "-5"}, "is not a positive amount"),
        ({"extent": "part", "net_amount": "lots"}, "is not an amount"),
        ({"extent": "part", "net_amount": "500.01"}, "At most EUR 500.00 of invoice"),
        ({"extent": "everything"}, "Select a valid choice"),
    ],
)
def test_hostile_credit_note_input_is_refused_by_name(unpaid, staff, fields, error) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        response = review_credit(signed_in_client(staff), invoice, **fields)
    assert error in text(response)
    assert 'name="token"' not in text(response)
    assert not invoice.credit_notes.exists()


def test_the_service_refuses_a_credit_note_confirmed_before_another(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        first = credit_note_issue(
            invoice=invoice, reason="a", actor=staff, net_amount=Decimal("10.00"), credited_before=0
        )
        with pytest.raises(Exception, match=f"credit notes issued since: {first.number}"):
            credit_note_issue(
                invoice=invoice,
                reason="b",
                actor=staff,
                net_amount=Decimal("10.00"),
                credited_before=0,
            )
    assert invoice.credit_notes.count() == 1


# The read-only invoice page, PDFs and the list --------------------------------------


def test_the_invoice_page_is_read_only_and_shows_the_parties_as_fields(
    unpaid, staff, organisation_a
) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        response = signed_in_client(staff).get(f"{INVOICES}{invoice.pk}/change/")
    html = text(response)
    for control in ('name="_save"', 'name="_continue"', 'name="_addanother"', "deletelink"):
        assert control not in html
    assert 'name="lines-MAX_NUM_FORMS" value="0"' in html  # so no "Add another" row
    assert "vat_number&quot;" not in html and '"vat_number"' not in html  # no raw JSON
    assert "Customer, as invoiced" in html and "Vendor, as invoiced" in html
    assert organisation_a.name in html
    assert "VAT number" in html and "Postal address" in html
    assert "EUR 605.00" in html and "EUR 605.00 due" in html
    assert "1 Jan 2027 to 31 Dec 2027" in html
    assert f'href="{page(invoice, "pdf")}"' in html


def test_the_invoice_pdf_link_gives_staff_the_pdf(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        link = client.get(page(invoice, "pdf"))
        assert link.status_code == 302 and link["Location"].startswith("/files/")
        pdf = client.get(link["Location"])
        assert b"".join(pdf.streaming_content).startswith(b"%PDF")


def another_invoice(licence) -> Invoice:
    """An unpaid invoice of another customer for the same product."""
    customer = OrganisationFactory()
    other = LicenceFactory(customer=customer, product=licence.product)
    return subscribe(other, UserFactory(organisation=customer))[1]


def _invoices(count: int, licence, staff) -> None:
    with at(2027, 1, 1):
        for _ in range(count):
            pay(another_invoice(licence), on=date(2027, 1, 1))


@pytest.mark.parametrize("rows", [2, 12])
def test_the_invoice_list_costs_the_same_queries_whatever_its_length(
    rows, licence, staff, django_assert_max_num_queries
) -> None:
    _invoices(rows, licence, staff)
    client = signed_in_client(staff)
    client.get(INVOICES)  # warm the session and the content types
    with django_assert_max_num_queries(6):  # session, user, device, 2 counts, the page
        response = client.get(INVOICES)
    assert text(response).count('aria-label="PDF of Invoice ') == rows


def test_the_invoice_list_shows_money_with_its_currency_and_settled_in_words(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        due = text(client.get(INVOICES))
        pay(invoice, on=date(2027, 1, 5))
        settled = text(client.get(INVOICES))
    assert "EUR 605.00 due" in due
    assert '<span class="staff-settled">✓ settled</span>' in settled
    assert ">EUR 605.00<" in settled


def test_the_bulk_action_still_records_a_payment_with_its_reference(unpaid, staff) -> None:
    """The list's "Record a payment…" action stays (one invoice at a time, amount and day
    asked on its own page) and now keeps the bank reference too."""
    _, invoice = unpaid
    data = {
        "action": "record_payment",
        "_selected_action": [invoice.pk],
        "apply": "1",
        "amount": "605.00",
        "received_on": "2027-01-04",
    }
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        refused = client.post(INVOICES, {**data, "reference": "bad\x07"})
        assert "cannot be printed" in text(refused) and not Payment.objects.exists()
        client.post(INVOICES, {**data, "reference": " BULK-7 "})
    assert Payment.objects.get().reference == "BULK-7"


def test_a_credit_note_or_a_missing_invoice_has_no_payment_or_credit_page(unpaid, staff) -> None:
    _, invoice = unpaid
    with at(2027, 1, 5):
        note = credit_note_issue(invoice=invoice, reason="wrong licence", actor=staff)
        client = signed_in_client(staff)
        for what, why in [
            ("record-payment", "is a credit note; it is not paid"),
            ("credit-note", "has nothing left to credit"),
        ]:
            refused = client.get(page(note, what), follow=True)
            assert f"Credit note {note.number} {why}" in shown(refused)
            assert client.get(f"{INVOICES}999999/{what}/").status_code == 404
        assert client.get(f"{INVOICES}999999/pdf/").status_code == 404
        assert "Issue credit note" not in text(client.get(f"{INVOICES}{invoice.pk}/change/"))


def test_an_invoice_address_that_is_no_number_is_not_found(unpaid, staff) -> None:
    """A stylesheet's relative @import once asked for .../1/change/widgets.css: a 500."""
    _, invoice = unpaid
    with at(2027, 1, 5):
        client = signed_in_client(staff)
        for path in ("widgets.css/change/", "widgets.css/record-payment/", "x/pdf/"):
            response = client.get(f"{INVOICES}{invoice.pk}/change/{path}", follow=True)
            assert response.status_code in (200, 404)
        assert client.get(f"{INVOICES}abc/change/", follow=True).status_code == 200


def test_the_parties_address_shows_on_lines_and_their_text_is_escaped(
    licence, subscriber, organisation_a, staff
) -> None:
    organisation_a.address = "Keizersgracht 1\n1015 CJ <b>Amsterdam</b>"
    organisation_a.name = "Northwind <script>alert(1)</script> B.V."
    organisation_a.save()
    with at(2027, 1, 1):
        _, invoice = subscribe(licence, subscriber)
        html = text(signed_in_client(staff).get(f"{INVOICES}{invoice.pk}/change/"))
    assert "Keizersgracht 1<br>1015 CJ &lt;b&gt;Amsterdam&lt;/b&gt;" in html
    assert "<script>alert(1)</script>" not in html


def test_an_unpayable_invoice_says_why_before_any_payment_form(
    licence, subscriber, staff, settings
) -> None:
    """A renewal of a subscription cancelled at its period's end is not payable: staff
    are told why when they ask to record a payment, not after filling one in."""
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30
    with at(2027, 1, 1):
        subscription, invoice = subscribe(licence, subscriber)
        pay(invoice, on=date(2027, 1, 1))
    with at(2027, 12, 2):
        (renewal,) = subscriptions_renew_due(today=date(2027, 12, 2))
        subscription.refresh_from_db()
        subscription_cancel_at_period_end(subscription=subscription, actor=subscriber)
        renewal = Invoice.objects.get(pk=renewal.pk)
        why = payment_refusal(invoice=renewal)
        assert why.startswith(f"Invoice {renewal.number} renews the escrow subscription for")
        assert "which was cancelled" in why and "is not renewed" in why
        client = signed_in_client(staff)
        change = text(client.get(f"{INVOICES}{renewal.pk}/change/"))
        refused = client.get(page(renewal, "record-payment"), follow=True)
    assert "Record payment" not in change
    assert why in shown(refused)
    assert (
        payment_refusal(invoice=invoice)
        == f"{invoice} has nothing due: there is no payment to record."
    )
