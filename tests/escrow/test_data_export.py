from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import User
from billing.models import Invoice
from billing.payments import payment_record
from billing.periods import add_years
from billing.services import subscription_subscribe
from escrow.models import DataExport
from escrow.services.exports import ExportFeeRequired, export_request
from tests.conftest import signed_in_client
from tests.factories import LicenceFactory, UserFactory


@pytest.fixture
def two_customers(licence, subscriber, other_customer, product, staff):
    """Both organisations hold a licence, a subscription and an invoice."""
    subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    other_licence = LicenceFactory(customer=other_customer.organisation, product=product)
    subscription_subscribe(licence=other_licence, actor=other_customer, accept_terms=True)
    invoice = Invoice.objects.get(customer=subscriber.organisation)
    payment_record(
        invoice_number=invoice.number,
        amount=invoice.total,
        received_on=timezone.localdate(),
        actor=staff,
    )
    UserFactory(email="bob@northwind.example", organisation=subscriber.organisation)
    return subscriber, other_customer


def request_export(client, captured, **data):
    with captured(execute=True):
        return client.post("/portal/exports/", data, follow=True)


def download(client, export: DataExport) -> zipfile.ZipFile:
    link = client.get(f"/portal/exports/{export.pk}/download/")
    assert link["Location"].startswith("/files/")
    response = client.get(link["Location"])
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_the_export_holds_every_record_of_the_organisation_and_none_of_another(
    two_customers, django_capture_on_commit_callbacks
) -> None:
    subscriber, other = two_customers
    client = signed_in_client(subscriber)
    page = request_export(client, django_capture_on_commit_callbacks)
    assert "Your export" in page.content.decode()
    export = DataExport.objects.get(organisation=subscriber.organisation)
    assert export.state == "ready"
    archive = download(client, export)
    names = set(archive.namelist())
    assert {
        "README.txt",
        "index.html",
        "SHA256SUMS",
        "users.csv",
        "licences.csv",
        "invoices.csv",
        "subscriptions.csv",
        "payments.csv",
        "deposits.csv",
        "claims.csv",
        "claim_history.csv",
    } <= names

    def rows(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))

    mine = subscriber.organisation
    assert {row["E-mail"] for row in rows("users.csv")} == set(
        User.objects.filter(organisation=mine).values_list("email", flat=True)
    )
    assert not any("password" in name.lower() for name in rows("users.csv")[0])
    assert {row["Number"] for row in rows("invoices.csv")} == set(
        Invoice.objects.filter(customer=mine).values_list("number", flat=True)
    )
    assert len(rows("payments.csv")) == 1
    assert [(row["Product"], row["Vendor"]) for row in rows("licences.csv")] == [
        ("Ledger Pro", "Acme Software B.V.")
    ]
    invoice_pdfs = [name for name in names if name.startswith("invoices/")]
    assert len(invoice_pdfs) == Invoice.objects.filter(customer=mine).count()
    assert all(archive.read(name).startswith(b"%PDF") for name in invoice_pdfs)

    readable = (".csv", ".html", ".txt", "SHA256SUMS")
    everything = b"".join(archive.read(name) for name in names if name.endswith(readable))
    assert subscriber.password.encode() not in everything
    assert other.email.encode() not in everything
    assert other.organisation.name.encode() not in everything
    other_invoice = Invoice.objects.get(customer=other.organisation)
    assert other_invoice.number.encode() not in everything


def test_a_second_export_within_a_year_shows_its_fee_first(
    two_customers, django_capture_on_commit_callbacks, settings
) -> None:
    settings.ESCROW_EXPORT_FEE = Decimal("250.00")
    subscriber, _ = two_customers
    client = signed_in_client(subscriber)
    request_export(client, django_capture_on_commit_callbacks)
    page = client.get("/portal/exports/").content.decode()
    assert "costs EUR 250.00" in page
    free_again = add_years(timezone.localdate(), 1)
    assert f"wait until {free_again:%-d %B %Y}, when the next one is free again" in page
    refused = request_export(client, django_capture_on_commit_callbacks)
    assert "Tick the box to accept the fee" in refused.content.decode()
    assert DataExport.objects.count() == 1
    invoices_before = Invoice.objects.count()

    request_export(client, django_capture_on_commit_callbacks, accept_fee="on")
    second = DataExport.objects.order_by("-pk").first()
    assert second is not None
    assert (second.state, second.fee) == ("ready", Decimal("250.00"))
    assert Invoice.objects.count() == invoices_before + 1
    assert second.invoice is not None
    assert second.invoice.purpose == "data_export"
    assert second.invoice.net_amount == Decimal("250.00")


def test_an_export_older_than_twelve_months_makes_the_next_free(
    two_customers, django_capture_on_commit_callbacks
) -> None:
    subscriber, _ = two_customers
    with django_capture_on_commit_callbacks(execute=True):
        first = export_request(actor=subscriber)
    first.refresh_from_db()
    assert first.state == "ready"
    DataExport.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=366))
    second = export_request(actor=subscriber)
    assert second.pk != first.pk
    assert second.fee == Decimal("0.00")


def test_a_request_while_one_is_being_built_returns_that_one(two_customers) -> None:
    subscriber, _ = two_customers
    first = export_request(actor=subscriber)  # its build is queued for after the commit
    assert first.state == "building"
    assert export_request(actor=subscriber).pk == first.pk
    assert DataExport.objects.count() == 1


def test_without_accepting_the_fee_nothing_is_invoiced(
    two_customers, django_capture_on_commit_callbacks
) -> None:
    subscriber, _ = two_customers
    with django_capture_on_commit_callbacks(execute=True):
        first = export_request(actor=subscriber)
    first.refresh_from_db()
    assert first.state == "ready"
    invoices = Invoice.objects.count()
    with pytest.raises(ExportFeeRequired):
        export_request(actor=subscriber, accept_fee=False)
    assert Invoice.objects.count() == invoices
    assert DataExport.objects.count() == 1


def test_another_organisations_export_is_not_found(
    two_customers, django_capture_on_commit_callbacks
) -> None:
    subscriber, other = two_customers
    request_export(signed_in_client(subscriber), django_capture_on_commit_callbacks)
    export = DataExport.objects.get()
    response = signed_in_client(other).get(f"/portal/exports/{export.pk}/download/")
    assert response.status_code == 404


def test_the_export_holds_the_evidence_documents_the_organisation_filed(
    two_customers, notary, notary_identity, product, staff, django_capture_on_commit_callbacks
) -> None:
    from escrow.services.claims import claim_file
    from escrow.services.evidence import Upload
    from tests.factories import make_acknowledged_deposit

    subscriber, _ = two_customers
    make_acknowledged_deposit(product=product, notary=notary)
    document = b"%PDF-1.4\n% the court ruling\n"
    claim = claim_file(
        product=product,
        filed_by=subscriber,
        condition="insolvency",
        statement="Bankrupt.",
        uploads=[Upload("ruling.pdf", document)],
    )
    client = signed_in_client(subscriber)
    request_export(client, django_capture_on_commit_callbacks)
    archive = download(client, DataExport.objects.get())
    evidence = claim.evidence.get()
    assert archive.read(f"documents/claim-{claim.pk}/{evidence.pk}-ruling.pdf") == document
    claims = list(csv.DictReader(io.StringIO(archive.read("claims.csv").decode("utf-8-sig"))))
    assert [row["Claim"] for row in claims] == [f"Claim #{claim.pk}"]
    index = archive.read("index.html").decode()
    assert f'href="documents/claim-{claim.pk}/{evidence.pk}-ruling.pdf"' in index


def test_an_export_that_fails_in_the_portal_answers_and_shows_failed(
    two_customers, django_capture_on_commit_callbacks, settings, tmp_path
) -> None:
    # The export folder cannot be written: the build fails after the request commits.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.ESCROW_INTAKE_DIR = blocked
    subscriber, _ = two_customers
    client = signed_in_client(subscriber)
    page = request_export(client, django_capture_on_commit_callbacks)
    assert page.status_code == 200
    export = DataExport.objects.get(organisation=subscriber.organisation)
    assert export.state == "failed"
    assert "Failed" in client.get("/portal/exports/").content.decode()
    # The next request is not blocked, and costs nothing: the failed one did not count.
    settings.ESCROW_INTAKE_DIR = tmp_path / "intake"
    request_export(client, django_capture_on_commit_callbacks)
    latest = DataExport.objects.filter(organisation=subscriber.organisation).order_by("-pk")[0]
    assert (latest.state, latest.fee) == ("ready", Decimal("0.00"))


@pytest.mark.django_db(transaction=True)
def test_a_build_that_fails_in_process_is_said_at_once_not_being_built(
    two_customers, settings, tmp_path
) -> None:
    # Committed for real, as on the embedded default: the build runs in-process
    # before the answer, so the answer tells the truth about it.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.ESCROW_INTAKE_DIR = blocked
    subscriber, _ = two_customers
    page = signed_in_client(subscriber).post("/portal/exports/", follow=True)
    text = page.content.decode()
    assert "could not be built" in text
    assert "is being built" not in text
    assert DataExport.objects.get(organisation=subscriber.organisation).state == "failed"
