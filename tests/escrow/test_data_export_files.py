"""The data export opens without this software: a README, an index.html with relative
links only, CSV files that name things (not ids), every deposit's manifest and
certificate, every invoice PDF, the claims with their history in sentences, and
SHA256SUMS over the rest. Content people wrote is escaped in the HTML and cannot
run as a formula in a spreadsheet."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from accounts.models import Product
from billing.models import Invoice
from billing.payments import payment_record
from billing.services import subscription_subscribe
from escrow.models import DataExport, Deposit, ReleaseClaim
from escrow.services import export_files
from escrow.services.claims import claim_notify_vendor
from escrow.services.deposits import deposit_acknowledge
from escrow.services.export_files import ExportArchive, cell, neutralised
from escrow.services.exports import export_request
from records.services.files import stored_file_open
from tests.deposits import deposit_through_pipeline
from tests.factories import LicenceFactory, ProductFactory, make_active_subscription, make_claim
from vault.keys import system_signing_key
from vault.manifest import verify_manifest

HOSTILE_NAME = "=cmd|' /C calc'!A0"
SCRIPT_NAME = "<script>alert('x')</script> Tools"


@pytest.fixture
def covered(licence, subscriber, staff, product, notary, notary_identity) -> Deposit:
    """A paid subscription for Ledger Pro, its deposit acknowledged by the notary."""
    subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    invoice = Invoice.objects.get(customer=subscriber.organisation)
    payment_record(
        invoice_number=invoice.number,
        amount=invoice.total,
        received_on=timezone.localdate(),
        actor=staff,
    )
    deposit = deposit_through_pipeline(product=product, staff=staff, version="2.4.0")
    return deposit_acknowledge(deposit=deposit, notary=notary)


@pytest.fixture
def claim(covered, product, subscriber) -> ReleaseClaim:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    return claim


def exported(subscriber, capture) -> zipfile.ZipFile:
    with capture(execute=True):
        export = export_request(actor=subscriber)
    export.refresh_from_db()
    assert export.state == DataExport.State.READY, export.problem
    assert export.stored_file is not None
    with stored_file_open(export.stored_file) as stream:
        return zipfile.ZipFile(io.BytesIO(stream.read()))


def rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")


def test_each_deposit_comes_with_its_metadata_manifest_and_certificate(
    covered, subscriber, django_capture_on_commit_callbacks
) -> None:
    archive = exported(subscriber, django_capture_on_commit_callbacks)
    [row] = rows(archive, "deposits.csv")
    assert row["Product"] == "Ledger Pro"
    assert row["Vendor"] == "Acme Software B.V."
    assert row["Version"] == "2.4.0"
    assert row["State"] == "Acknowledged by the notary"
    assert ISO_UTC.match(row["Received at"])
    assert row["Archive SHA-256"] == covered.archive_sha256
    assert row["Archive size (bytes)"] == str(covered.archive_size)
    assert row["Manifest SHA-256"] == covered.manifest_sha256
    assert row["Storage sites"]  # the sites holding verified copies, by name
    assert row["Storage sites"] == ", ".join(sorted({copy.site for copy in covered.copies.all()}))
    certificate = archive.read(row["Certificate"])
    assert row["Certificate"] == "deposits/ledger-pro/2.4.0/certificate.pdf"
    assert certificate.startswith(b"%PDF")
    manifest = archive.read(row["Manifest"])
    # The manifest is the very bytes the certificate's hash and the signature cover.
    assert hashlib.sha256(manifest).hexdigest() == covered.manifest_sha256
    signature = archive.read("deposits/ledger-pro/2.4.0/manifest.sig").decode().strip()
    verify_manifest(json.loads(manifest), signature, system_signing_key().public_key())
    assert "pk" not in row and "id" not in {name.lower() for name in row}


def test_invoices_name_their_numbers_money_with_currency_and_iso_dates(
    covered, subscriber, django_capture_on_commit_callbacks
) -> None:
    archive = exported(subscriber, django_capture_on_commit_callbacks)
    invoices = rows(archive, "invoices.csv")
    assert invoices, "the subscription was invoiced"
    for row in invoices:
        invoice = Invoice.objects.get(number=row["Number"])
        assert row["Total"] == f"{invoice.currency} {invoice.total:,.2f}"
        assert ISO_DATE.match(row["Issued on"]) and ISO_DATE.match(row["Due on"])
        assert row["Kind"] in {"Invoice", "Credit note"}
        assert archive.read(row["PDF"]).startswith(b"%PDF")
    [subscription] = rows(archive, "subscriptions.csv")
    assert (subscription["Product"], subscription["State"]) == ("Ledger Pro", "Active")


def test_claims_come_with_their_history_in_sentences(
    claim, subscriber, django_capture_on_commit_callbacks
) -> None:
    archive = exported(subscriber, django_capture_on_commit_callbacks)
    [row] = rows(archive, "claims.csv")
    assert row["Claim"] == f"Claim #{claim.pk}"
    assert (row["Product"], row["Condition"], row["State"]) == (
        "Ledger Pro",
        "Bankruptcy or insolvency",
        "Vendor notified",
    )
    assert row["Filed by"] == subscriber.full_name
    history = [line["What happened"] for line in rows(archive, "claim_history.csv")]
    assert history[0].startswith(f"{subscriber.full_name} filed the claim with 1 document")
    assert history[1].startswith("The vendor was notified by e-mail on ")
    index = archive.read("index.html").decode()
    assert "The vendor was notified by e-mail on " in index
    assert "releaseclaim." not in index and "releaseclaim." not in "".join(history)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.links += [value or "" for name, value in attrs if name in {"href", "src"}]


def test_the_index_links_only_to_files_inside_the_export(
    claim, subscriber, django_capture_on_commit_callbacks
) -> None:
    archive = exported(subscriber, django_capture_on_commit_callbacks)
    parser = _Links()
    parser.feed(archive.read("index.html").decode())
    names = set(archive.namelist())
    assert parser.links, "the index links to the files"
    assert all(link in names for link in parser.links), set(parser.links) - names
    assert not parser.tags & {"script", "link", "img", "iframe"}
    for expected in ("deposits.csv", "claims.csv", "invoices.csv", "README.txt"):
        assert expected in parser.links
    assert any(link.endswith("certificate.pdf") for link in parser.links)
    assert any(link.startswith("invoices/") for link in parser.links)


def test_sha256sums_covers_every_other_file_and_the_readme_says_how_to_check(
    claim, subscriber, django_capture_on_commit_callbacks
) -> None:
    archive = exported(subscriber, django_capture_on_commit_callbacks)
    listed = {}
    for line in archive.read("SHA256SUMS").decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == set(archive.namelist()) - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name
    readme = archive.read("README.txt").decode()
    assert "sha256sum -c SHA256SUMS" in readme
    assert "index.html" in readme and "deposits.csv" in readme


def test_hostile_names_are_escaped_in_html_and_inert_in_csv(
    licence, subscriber, staff, vendor, notary, notary_identity, django_capture_on_commit_callbacks
) -> None:
    hostile = ProductFactory(vendor=vendor, name=HOSTILE_NAME, slug="calc")
    scripted = ProductFactory(vendor=vendor, name=SCRIPT_NAME, slug="tools")
    for product in (hostile, scripted):
        covered = LicenceFactory(customer=subscriber.organisation, product=product)
        make_active_subscription(licence=covered, actor=subscriber, staff=staff)
        deposit = deposit_through_pipeline(product=product, staff=staff, version="1.0.0")
        deposit_acknowledge(deposit=deposit, notary=notary)
    claim = make_claim(product=hostile, filed_by=subscriber)
    ReleaseClaim.objects.filter(pk=claim.pk).update(statement="@SUM(1+1)*cmd|' /C calc'!A0")
    archive = exported(subscriber, django_capture_on_commit_callbacks)

    products = {row["Product"] for row in rows(archive, "deposits.csv")}
    assert products == {"'" + HOSTILE_NAME, SCRIPT_NAME}
    [claimed] = rows(archive, "claims.csv")
    assert claimed["Product"] == "'" + HOSTILE_NAME
    assert claimed["Statement"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    for name in archive.namelist():
        if name.endswith(".csv"):
            for row in csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig"))):
                assert not any(value.startswith(("=", "+", "@")) for value in row), (name, row)

    index = archive.read("index.html").decode()
    assert "<script" not in index
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Tools" in index
    assert Product.objects.filter(name=SCRIPT_NAME).exists()


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_text_cell_that_could_be_a_formula_gets_an_apostrophe(start: str) -> None:
    assert neutralised(f"{start}1+2") == f"'{start}1+2"
    assert cell(f"{start}1+2") == f"'{start}1+2"


def test_ordinary_text_and_numbers_are_left_as_they_are() -> None:
    assert neutralised("Ledger Pro") == "Ledger Pro"
    assert cell("EUR -250.00") == "EUR -250.00"
    assert cell(Decimal("-250.00")) == "-250.00"  # a number we wrote, not a formula
    assert cell(None) == ""


def test_stored_files_are_copied_into_the_zip_in_chunks(monkeypatch) -> None:
    monkeypatch.setattr(export_files, "CHUNK_BYTES", 10)
    reads: list[int] = []

    class Source(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            assert size is not None and 0 < size <= 10, "read whole into memory"
            reads.append(size)
            return super().read(size)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        out = ExportArchive(archive)
        out.copy("big.bin", Source(b"x" * 95))
    assert len(reads) == 11  # ten chunks and the empty read that ends it
    assert zipfile.ZipFile(buffer).read("big.bin") == b"x" * 95
    assert out.sums == [(hashlib.sha256(b"x" * 95).hexdigest(), "big.bin")]


def test_the_activity_of_the_organisation_reads_as_sentences(
    covered, subscriber, other_customer, django_capture_on_commit_callbacks
) -> None:
    other_licence = LicenceFactory(customer=other_customer.organisation, product=covered.product)
    subscription_subscribe(licence=other_licence, actor=other_customer, accept_terms=True)
    archive = exported(subscriber, django_capture_on_commit_callbacks)
    activity = [row["What happened"] for row in rows(archive, "activity.csv")]
    assert any(text.startswith(f"{subscriber.full_name} asked to subscribe") for text in activity)
    assert any(text.startswith("An invoice was issued on ") for text in activity)
    assert any(text.startswith("A payment was recorded on ") for text in activity)
    assert any(text.startswith("The escrow subscription became active on ") for text in activity)
    codes = re.compile(r"\b[a-z_]+\.[a-z_]+\b")  # "payment.record", "subscription.activate"
    assert not [text for text in activity if "recorded a step" in text or codes.search(text)]
    # Only this organisation's: the other customer's request is not in it.
    assert len([text for text in activity if "asked to subscribe" in text]) == 1


@pytest.mark.django_db
def test_an_organisation_with_nothing_yet_still_gets_a_readable_export(subscriber) -> None:
    """Written straight into a ZIP: the README, the index and every CSV with its header
    row are there even before the organisation has any deposit, claim or invoice."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        export_files.export_files_write(archive, organisation=subscriber.organisation)
    with zipfile.ZipFile(buffer) as archive:
        names = set(archive.namelist())
        assert {"README.txt", "index.html", "deposits.csv", "invoices.csv", "claims.csv"} <= names
        assert rows(archive, "deposits.csv") == []
        assert next(csv.reader(io.StringIO(archive.read("deposits.csv").decode("utf-8-sig"))))
        assert subscriber.organisation.name in archive.read("index.html").decode()
