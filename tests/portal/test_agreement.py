"""The escrow agreement as a versioned document: version 1 ships in the repository and
is loaded by a migration; the subscribe page shows which version the checkbox accepts;
the acceptance (version, person, organisation, time, address) is recorded with the
subscription; the agreement page and its PDFs are there at any time."""

from __future__ import annotations

import importlib
import io
import re

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from pypdf import PdfReader

from billing.agreements import (
    acceptances_of,
    agreement_accept,
    agreement_blocks,
    agreement_current,
    agreement_pdf_render,
    agreement_text_of,
    client_ip,
)
from billing.models import AgreementAcceptance, EscrowAgreement, Subscription
from billing.services import subscription_subscribe
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import LicenceFactory, make_subscription


def _subscribe_url(licence) -> str:
    return f"/portal/licences/{licence.pk}/subscribe/"


def test_version_1_is_the_shipped_text_and_the_only_current_one(db) -> None:
    current = agreement_current()
    title, text = agreement_text_of(1)
    assert (current.version, current.title, current.text) == (1, title, text)
    assert title == "Software Escrow Agreement"
    assert EscrowAgreement.objects.filter(is_current=True).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        EscrowAgreement.objects.create(
            version=2, title="t", text="x", published_at=timezone.now(), is_current=True
        )


def test_a_flushed_table_gets_version_1_again(db) -> None:
    EscrowAgreement.objects.all().delete()
    assert agreement_current().version == 1


def test_the_text_has_headings_and_paragraphs(db) -> None:
    blocks = agreement_blocks(agreement_current())
    assert blocks[0].kind == "paragraph"
    headings = [block.text for block in blocks if block.kind == "heading"]
    assert "3. What you may do with a released deposit" in headings
    assert all("## " not in block.text for block in blocks)


def test_the_subscribe_page_names_the_version_and_puts_the_box_left_of_its_sentence(
    licence, subscriber
) -> None:
    page = signed_in_client(subscriber).get(_subscribe_url(licence)).content.decode()
    assert re.search(
        r'<label class="check"><input type="checkbox" name="accept_terms"[^>]*> '
        r"I have read and accept the Escrow Agreement version 1</label>",
        page,
    )
    assert 'href="/portal/agreement/"' in page
    assert 'href="/portal/agreement/1/pdf/"' in page
    assert 'name="agreement_version" value="1"' in page


def test_subscribing_records_the_acceptance_with_who_when_and_where(licence, subscriber) -> None:
    client = signed_in_client(subscriber)
    response = client.post(
        _subscribe_url(licence),
        {"accept_terms": "on", "agreement_version": "1"},
        REMOTE_ADDR="203.0.113.7",
    )
    assert response.status_code == 302
    subscription = Subscription.objects.get()
    acceptance = AgreementAcceptance.objects.get()
    assert acceptance.agreement.version == 1
    assert acceptance.accepted_by == subscriber
    assert acceptance.organisation == subscriber.organisation
    assert acceptance.subscription == subscription
    assert acceptance.ip_address == "203.0.113.7"
    assert abs((timezone.now() - acceptance.accepted_at).total_seconds()) < 60
    entry = AuditEntry.objects.get(action="agreement.accept")
    assert entry.details["version"] == 1 and entry.details["ip_address"] == "203.0.113.7"


def test_without_the_tick_nothing_is_subscribed_or_accepted(licence, subscriber) -> None:
    page = (
        signed_in_client(subscriber)
        .post(_subscribe_url(licence), {"agreement_version": "1"})
        .content.decode()
    )
    assert "Tick the box to accept the Escrow Agreement version 1" in page
    assert not Subscription.objects.exists() and not AgreementAcceptance.objects.exists()


def test_a_version_published_after_the_page_was_shown_is_not_accepted_unread(
    licence, subscriber
) -> None:
    EscrowAgreement.objects.update(is_current=False)
    EscrowAgreement.objects.create(
        version=2,
        title="Software Escrow Agreement",
        text="New.",
        published_at=timezone.now(),
        is_current=True,
    )
    page = (
        signed_in_client(subscriber)
        .post(_subscribe_url(licence), {"accept_terms": "on", "agreement_version": "1"})
        .content.decode()
    )
    assert "The escrow agreement changed since the page was shown" in page
    assert "I have read and accept the Escrow Agreement version 2" in page
    assert not Subscription.objects.exists() and not AgreementAcceptance.objects.exists()


def test_the_acceptance_and_the_subscription_stand_or_fall_together(
    licence, subscriber, monkeypatch
) -> None:
    import billing.services

    def failing_await_payment(**kwargs):
        raise RuntimeError("the invoice could not be issued")

    monkeypatch.setattr(billing.services, "subscription_await_payment", failing_await_payment)
    with pytest.raises(RuntimeError):
        subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    assert not Subscription.objects.exists() and not AgreementAcceptance.objects.exists()


def test_an_old_version_cannot_be_accepted(licence, subscriber, staff) -> None:
    subscription = make_subscription(licence=licence, actor=subscriber)
    old = agreement_current()
    EscrowAgreement.objects.update(is_current=False)
    old.refresh_from_db()
    with pytest.raises(ValidationError, match="no longer current"):
        agreement_accept(agreement=old, subscription=subscription, actor=subscriber)


def test_only_a_user_of_the_licence_holder_accepts(licence, subscriber, other_customer) -> None:
    subscription = make_subscription(licence=licence, actor=subscriber)
    with pytest.raises(ValidationError, match="Only a user of the licence holder"):
        agreement_accept(
            agreement=agreement_current(), subscription=subscription, actor=other_customer
        )


@pytest.mark.parametrize(
    ("given", "kept"),
    [("203.0.113.7", "203.0.113.7"), ("", None), ("not-an-ip", None), (" ::1 ", "::1")],
)
def test_client_ip(given, kept) -> None:
    assert client_ip(given) == kept


def test_the_agreement_page_lists_this_organisations_acceptances_only(
    licence, subscriber, other_customer, product
) -> None:
    subscription_subscribe(
        licence=licence, actor=subscriber, accept_terms=True, ip_address="198.51.100.4"
    )
    other_licence = LicenceFactory(customer=other_customer.organisation, product=product)
    subscription_subscribe(licence=other_licence, actor=other_customer, accept_terms=True)
    page = signed_in_client(subscriber).get("/portal/agreement/").content.decode()
    assert "<h1>The escrow agreement</h1>" in page
    assert "Software Escrow Agreement, version 1 (current)" in page
    assert "<h3>3. What you may do with a released deposit</h3>" in page
    assert subscriber.email in page and "198.51.100.4" in page
    assert other_customer.email not in page
    assert 'href="/portal/agreement/1/pdf/"' in page
    assert list(
        acceptances_of(other_customer.organisation).values_list("accepted_by", flat=True)
    ) == [other_customer.pk]
    fresh = signed_in_client(other_customer).get("/portal/agreement/").content.decode()
    assert "198.51.100.4" not in fresh


def test_the_pdf_downloads_with_this_organisations_acceptance(licence, subscriber) -> None:
    subscription_subscribe(
        licence=licence, actor=subscriber, accept_terms=True, ip_address="198.51.100.4"
    )
    response = signed_in_client(subscriber).get("/portal/agreement/1/pdf/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert 'filename="escrow-agreement-version-1.pdf"' in response["Content-Disposition"]


def test_the_pdf_names_the_acceptance(licence, subscriber) -> None:
    subscription_subscribe(
        licence=licence, actor=subscriber, accept_terms=True, ip_address="198.51.100.4"
    )
    pdf = agreement_pdf_render(agreement=agreement_current(), organisation=subscriber.organisation)
    assert pdf.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Software Escrow Agreement" in text
    assert "Acceptance by Northwind Logistics B.V." in text
    assert "198.51.100.4" in text


def test_an_unknown_version_is_not_found(subscriber) -> None:
    assert signed_in_client(subscriber).get("/portal/agreement/99/pdf/").status_code == 404


def test_the_migration_publishes_the_shipped_version_1(db) -> None:
    migration = importlib.import_module("billing.migrations.0005_escrow_agreement")
    EscrowAgreement.objects.all().delete()
    migration.publish_version_1(django_apps, None)
    agreement = EscrowAgreement.objects.get()
    assert (agreement.version, agreement.is_current) == (1, True)
    assert (agreement.title, agreement.text) == agreement_text_of(1)
