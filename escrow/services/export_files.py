"""The files of a customer's data export: what a person opens without this software.

A ZIP with a README, an ``index.html`` that opens in any browser (relative links,
nothing fetched from elsewhere), CSV files for spreadsheets that name things
rather than numbering them (product and organisation names, states in words,
money with its currency, ISO dates and UTC times), every deposit's manifest and
certificate, every invoice PDF, the claims with their history in sentences and
the evidence the organisation filed, and ``SHA256SUMS`` over every other file.

Each file is written into the ZIP as it is produced, row by row or in chunks,
and querysets are read in chunks: the memory an export needs does not grow with
the number of deposits, invoices or claims.

Text that came from people (a product name, a statement) is escaped in the HTML
and neutralised in the CSV files: a cell starting with ``=``, ``+``, ``-``, ``@``
(or a tab or carriage return) gets a leading apostrophe, so a spreadsheet shows
it as text and never runs it as a formula (CSV injection)."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from html import escape
from typing import IO, Any

from django.db.models import Q
from django.utils import timezone

from accounts.models import Organisation, User
from billing.documents import invoice_document_render
from billing.models import Invoice, LicenceAgreement, Payment, Subscription
from billing.templatetags.money import money
from escrow.certificates import CERTIFIABLE_STATES, certificate_document_render
from escrow.history import Audience, HistoryLine, history_lines
from escrow.models import (
    ClaimEvidence,
    DataExport,
    Deposit,
    DepositCopy,
    DepositState,
    ReleaseClaim,
)
from escrow.selectors import claim_history, products_covered_for
from escrow.services.evidence import evidence_open
from records.models import AuditEntry, Notification
from records.services.files import stored_file_open
from vault.site_clients import all_sites

#: Rows read from the database at a time.
CHUNK_ROWS = 500
#: Bytes copied at a time from a stored file into the ZIP.
CHUNK_BYTES = 1024 * 1024
#: What a spreadsheet would take for a formula at the start of a cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | Decimal | date | datetime | None


def neutralised(text: str) -> str:
    """``text`` safe as a CSV cell: a leading formula character gets an apostrophe."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def cell(value: Cell) -> str:
    """One CSV cell: ISO dates, UTC times with ``Z``, numbers as they are, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | Decimal):
        return str(value)
    return neutralised(str(value))


def _utc(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else ""


class _Hashing(io.RawIOBase):
    """A write-only stream into the ZIP that hashes what passes through."""

    def __init__(self, target: IO[bytes]):
        self.target = target
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.digest.update(chunk)
        self.target.write(chunk)
        return len(chunk)


class ExportArchive:
    """Writes files into the ZIP one at a time, keeping each one's SHA-256."""

    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive
        self.sums: list[tuple[str, str]] = []

    @contextmanager
    def open(self, name: str) -> Iterator[_Hashing]:
        with self.archive.open(name, "w", force_zip64=True) as target:
            stream = _Hashing(target)
            yield stream
        self.sums.append((stream.digest.hexdigest(), name))

    def write(self, name: str, data: bytes) -> None:
        with self.open(name) as stream:
            stream.write(data)

    def copy(self, name: str, source: IO[bytes]) -> None:
        with self.open(name) as stream:
            while chunk := source.read(CHUNK_BYTES):
                stream.write(chunk)

    @contextmanager
    def text(self, name: str) -> Iterator[IO[str]]:
        with self.open(name) as stream:
            text = io.TextIOWrapper(io.BufferedWriter(stream), encoding="utf-8", newline="")
            yield text
            text.detach().flush()  # detaching flushes the text; the buffer then flushes

    def csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
        """A CSV file in UTF-8 with a byte-order mark, so spreadsheets read accents right."""
        with self.text(name) as text:
            text.write("\ufeff")
            writer = csv.writer(text)
            writer.writerow(header)
            for row in rows:
                writer.writerow([cell(value) for value in row])


# --- what is exported ----------------------------------------------------------------


def _deposits(organisation: Organisation) -> Any:
    """The deposits of the products escrow covers for the organisation, as in its portal."""
    return (
        Deposit.objects.filter(product__in=products_covered_for(organisation))
        .exclude(state=DepositState.REJECTED)
        .select_related("product", "product__vendor")
        .prefetch_related("copies")
        .order_by("product__name", "created_at", "pk")
    )


def _claims(organisation: Organisation) -> Any:
    return (
        ReleaseClaim.objects.filter(claimant=organisation)
        .select_related("product", "product__vendor", "filed_by", "decided_by")
        .order_by("created_at", "pk")
    )


def _invoices(organisation: Organisation) -> Any:
    return (
        Invoice.objects.filter(customer=organisation)
        .with_amounts()
        .select_related("corrects")
        .order_by("issued_on", "number")
    )


def _deposit_folder(deposit: Deposit) -> str:
    return f"deposits/{deposit.product.slug}/{deposit.version}"


def _certificate_path(deposit: Deposit) -> str:
    """Where the deposit's certificate is in the ZIP; "" when it has none (yet)."""
    if deposit.state not in CERTIFIABLE_STATES:
        return ""
    return f"{_deposit_folder(deposit)}/certificate.pdf"


def _stored_key(deposit: Deposit, kind: str) -> str:
    """The storage key of the deposit's verified ``kind`` copy ("" when it has none)."""
    return next((copy.key for copy in deposit.copies.all() if copy.kind == kind), "")


def _manifest_path(deposit: Deposit) -> str:
    """Where the deposit's signed manifest is in the ZIP; "" while no site holds a
    verified copy of it."""
    if not _stored_key(deposit, DepositCopy.Kind.MANIFEST):
        return ""
    return f"{_deposit_folder(deposit)}/manifest.json"


def _signature_path(deposit: Deposit) -> str:
    return f"{_deposit_folder(deposit)}/manifest.sig"


def _invoice_path(invoice: Invoice) -> str:
    kind = invoice.get_kind_display().lower().replace(" ", "-")
    return f"invoices/{kind}-{invoice.number}.pdf"


def _evidence_path(item: ClaimEvidence) -> str:
    return f"documents/claim-{item.claim_id}/{item.pk}-{item.filename}"


def _sites(deposit: Deposit) -> str:
    return ", ".join(sorted({copy.site for copy in deposit.copies.all()}))


def _completeness(deposit: Deposit) -> tuple[int | None, str]:
    completeness = deposit.manifest.get("completeness", {}) if deposit.manifest else {}
    warnings = completeness.get("warnings", []) or []
    return completeness.get("files"), "; ".join(str(warning) for warning in warnings)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _write_csv_files(out: ExportArchive, organisation: Organisation) -> None:
    users = User.objects.filter(organisation=organisation).order_by("full_name", "email")
    out.csv(
        "users.csv",
        ["Name", "E-mail", "Role", "Active", "Joined on"],
        (
            [user.full_name, user.email, user.get_role_display(), _yes(user.is_active),
             user.date_joined.date()]
            for user in users.iterator(chunk_size=CHUNK_ROWS)
        ),
    )  # fmt: skip
    licences = LicenceAgreement.objects.filter(customer=organisation).select_related(
        "product", "product__vendor"
    )
    out.csv(
        "licences.csv",
        ["Product", "Vendor", "Annual licence fee", "Start date"],
        (
            [licence.product.name, licence.product.vendor.name,
             money(licence.annual_fee, licence.currency), licence.start_date]
            for licence in licences.order_by("product__name").iterator(chunk_size=CHUNK_ROWS)
        ),
    )  # fmt: skip
    subscriptions = Subscription.objects.filter(licence__customer=organisation).select_related(
        "licence__product", "terms_accepted_by"
    )
    out.csv(
        "subscriptions.csv",
        ["Product", "State", "Escrow fee (share of the licence fee)", "Period start",
         "Paid until", "Terms accepted at", "Terms accepted by", "Cancelled at"],
        (
            [s.licence.product.name, s.get_state_display(), f"{s.fee_rate * 100:.2f}%",
             s.period_start, s.period_end, s.terms_accepted_at,
             s.terms_accepted_by.full_name if s.terms_accepted_by else "", s.cancelled_at]
            for s in subscriptions.order_by("licence__product__name", "created_at").iterator(
                chunk_size=CHUNK_ROWS
            )
        ),
    )  # fmt: skip
    out.csv(
        "invoices.csv",
        ["Number", "Kind", "For", "Corrects", "Issued on", "Due on", "Period start",
         "Period end", "Net", "VAT", "Total", "Paid", "Still due", "Settled", "PDF"],
        (
            [i.number, i.get_kind_display(), i.get_purpose_display(),
             i.corrects.number if i.corrects else "", i.issued_on, i.due_on, i.period_start,
             i.period_end, money(i.net_amount, i.currency), money(i.vat_amount, i.currency),
             money(i.total, i.currency), money(i.paid, i.currency), money(i.due, i.currency),
             _yes(i.due <= 0), _invoice_path(i)]
            for i in _invoices(organisation).iterator(chunk_size=CHUNK_ROWS)
        ),
    )  # fmt: skip
    payments = Payment.objects.filter(invoice__customer=organisation).select_related("invoice")
    out.csv(
        "payments.csv",
        ["Invoice", "Received on", "Amount", "Reference"],
        (
            [p.invoice.number, p.received_on, money(p.amount, p.invoice.currency), p.reference]
            for p in payments.order_by("received_on", "pk").iterator(chunk_size=CHUNK_ROWS)
        ),
    )
    out.csv(
        "deposits.csv",
        ["Product", "Vendor", "Version", "State", "Received at", "Commit", "Build",
         "Archive format", "Archive size (bytes)", "Archive SHA-256", "Manifest SHA-256",
         "Files", "Completeness warnings", "Storage sites", "Certificate", "Manifest"],
        (
            [d.product.name, d.product.vendor.name, d.version, d.get_state_display(),
             d.created_at, d.pipeline.get("commit", ""), d.pipeline.get("build_url", ""),
             d.manifest.get("archive", {}).get("format", "") if d.manifest else "",
             d.archive_size, d.archive_sha256, d.manifest_sha256, *_completeness(d), _sites(d),
             _certificate_path(d), _manifest_path(d)]
            for d in _deposits(organisation).iterator(chunk_size=CHUNK_ROWS)
        ),
    )  # fmt: skip
    out.csv(
        "claims.csv",
        ["Claim", "Product", "Vendor", "Condition", "State", "Filed at", "Filed by",
         "Statement", "Vendor's contest", "Contest deadline", "Decided at", "Decided by",
         "Decision reasons"],
        (
            [f"Claim #{c.pk}", c.product.name, c.product.vendor.name, c.get_condition_display(),
             c.get_state_display(), c.created_at, c.filed_by.full_name, c.statement,
             c.vendor_statement, c.contest_deadline, c.decided_at,
             c.decided_by.full_name if c.decided_by else "", c.decision_reasons]
            for c in _claims(organisation).iterator(chunk_size=CHUNK_ROWS)
        ),
    )  # fmt: skip
    out.csv(
        "claim_history.csv",
        ["Claim", "Product", "At", "What happened", "Note"],
        (
            [f"Claim #{claim.pk}", claim.product.name, line.at, line.text, line.note]
            for claim, lines in _histories(organisation)
            for line in lines
        ),
    )
    notifications = Notification.objects.filter(organisation=organisation)
    out.csv(
        "notifications.csv",
        ["Written at", "Subject", "Message"],
        (
            [n.created_at, n.subject, n.body]
            for n in notifications.order_by("created_at", "pk").iterator(chunk_size=CHUNK_ROWS)
        ),
    )
    out.csv(
        "activity.csv",
        ["At", "What happened", "Note"],
        ([line.at, line.text, line.note] for line in _activity(organisation)),
    )
    exports = DataExport.objects.filter(organisation=organisation).select_related("requested_by")
    out.csv(
        "data_exports.csv",
        ["Requested at", "Requested by", "State", "Fee"],
        (
            [e.created_at, e.requested_by.full_name, e.get_state_display(),
             money(e.fee, _export_currency())]
            for e in exports.order_by("created_at", "pk").iterator(chunk_size=CHUNK_ROWS)
        ),
    )  # fmt: skip


def _export_currency() -> str:
    from django.conf import settings

    return str(settings.ESCROW_EXPORT_FEE_CURRENCY)


def _activity(organisation: Organisation) -> Iterator[HistoryLine]:
    """What the organisation's people did, and what happened to its subscriptions,
    invoices and exports, oldest first, in sentences (claims have their own file)."""

    def keys(queryset: Any) -> list[str]:
        return [str(pk) for pk in queryset.values_list("pk", flat=True)]

    about = Q(object_type=Organisation._meta.label, object_id=str(organisation.pk))
    for model, queryset in (
        (Invoice, Invoice.objects.filter(customer=organisation)),
        (Subscription, Subscription.objects.filter(licence__customer=organisation)),
        (DataExport, DataExport.objects.filter(organisation=organisation)),
    ):
        about |= Q(object_type=model._meta.label, object_id__in=keys(queryset))
    users = User.objects.filter(organisation=organisation)
    entries = AuditEntry.objects.filter(Q(actor__in=users) | about).exclude(
        object_type__in=[ReleaseClaim._meta.label, Deposit._meta.label]
    )
    batch: list[AuditEntry] = []
    for entry in entries.order_by("sequence").iterator(chunk_size=CHUNK_ROWS):
        batch.append(entry)
        if len(batch) == CHUNK_ROWS:
            yield from _customer_lines(batch, organisation)
            batch = []
    yield from _customer_lines(batch, organisation)


def _customer_lines(entries: list[AuditEntry], organisation: Organisation) -> list[HistoryLine]:
    return history_lines(entries, audience=Audience.CUSTOMER, organisation_id=organisation.pk)


def _histories(organisation: Organisation) -> Iterator[tuple[ReleaseClaim, list[HistoryLine]]]:
    for claim in _claims(organisation).iterator(chunk_size=CHUNK_ROWS):
        yield (
            claim,
            history_lines(
                claim_history(claim), audience=Audience.CUSTOMER, organisation_id=organisation.pk
            ),
        )


def _write_documents(out: ExportArchive, organisation: Organisation) -> None:
    primary = all_sites()[0]
    for deposit in _deposits(organisation).iterator(chunk_size=CHUNK_ROWS):
        manifest_key = _stored_key(deposit, DepositCopy.Kind.MANIFEST)
        signature_key = _stored_key(deposit, DepositCopy.Kind.SIGNATURE)
        if manifest_key:
            # The very files the certificate's manifest hash and the signature cover.
            with primary.open(manifest_key) as stream:
                out.copy(_manifest_path(deposit), stream)
        if manifest_key and signature_key:
            with primary.open(signature_key) as stream:
                out.copy(_signature_path(deposit), stream)
        if _certificate_path(deposit):
            out.write(_certificate_path(deposit), certificate_document_render(deposit=deposit))
    for invoice in _invoices(organisation).iterator(chunk_size=CHUNK_ROWS):
        document = invoice_document_render(invoice=invoice)
        with stored_file_open(document) as stream:
            out.copy(_invoice_path(invoice), stream)
    evidence = ClaimEvidence.objects.filter(
        claim__claimant=organisation, side=ClaimEvidence.Side.CLAIMANT
    ).order_by("pk")
    for item in evidence.iterator(chunk_size=CHUNK_ROWS):
        out.write(_evidence_path(item), evidence_open(item))


# --- index.html ----------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem;
  color: #1d2733; line-height: 1.45; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1.5rem; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid #d8dde3;
  vertical-align: top; overflow-wrap: anywhere; }
code { font-size: 0.85em; overflow-wrap: anywhere; }
.note { color: #4a5868; white-space: pre-wrap; }
"""


def _link(path: str, label: str) -> str:
    return f'<a href="{escape(path)}">{escape(label)}</a>' if path else "—"


def _table(text: IO[str], header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A table; each cell is HTML the caller escaped already."""
    text.write("<table><thead><tr>")
    text.write("".join(f"<th>{escape(name)}</th>" for name in header))
    text.write("</tr></thead><tbody>\n")
    empty = True
    for row in rows:
        empty = False
        text.write("<tr>" + "".join(f"<td>{value}</td>" for value in row) + "</tr>\n")
    if empty:
        text.write(f'<tr><td colspan="{len(header)}">None.</td></tr>\n')
    text.write("</tbody></table>\n")


def _write_index(out: ExportArchive, organisation: Organisation, made_at: datetime) -> None:
    e: Callable[[object], str] = lambda value: escape(str(value))  # noqa: E731
    with out.text("index.html") as text:
        text.write(
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>Data export of {e(organisation.name)}</title>\n"
            f"<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>Data export of {e(organisation.name)}</h1>\n"
            f"<p>Made on {e(_utc(made_at))}. Every file in this export is listed below; "
            "the links open the files inside this folder, nothing is fetched from elsewhere. "
            f"{_link('README.txt', 'README.txt')} says how to check that no file changed.</p>\n"
            "<h2>Spreadsheets</h2>\n<ul>\n"
        )
        for name, about in CSV_FILES:
            text.write(f"<li>{_link(name, name)}: {e(about)}</li>\n")
        text.write("</ul>\n<h2>Deposits</h2>\n")
        _table(
            text,
            ["Product", "Version", "State", "Received", "Archive SHA-256", "Certificate",
             "Manifest"],
            (
                [e(d.product.name), e(d.version), e(d.get_state_display()), e(_utc(d.created_at)),
                 f"<code>{e(d.archive_sha256)}</code>",
                 _link(_certificate_path(d), "certificate (PDF)"),
                 _link(_manifest_path(d), "manifest (JSON)")]
                for d in _deposits(organisation).iterator(chunk_size=CHUNK_ROWS)
            ),
        )  # fmt: skip
        text.write("<h2>Release claims</h2>\n")
        claims = 0
        for claim, lines in _histories(organisation):
            claims += 1
            text.write(
                f"<h3>Claim #{claim.pk}: {e(claim.product.name)}</h3>\n"
                f"<p>{e(claim.get_condition_display())}. State: {e(claim.get_state_display())}."
                f'</p>\n<p class="note">{e(claim.statement)}</p>\n<ol>\n'
            )
            for line in lines:
                note = f'<br><span class="note">“{e(line.note)}”</span>' if line.note else ""
                text.write(f"<li>{e(line.text)}{note}</li>\n")
            text.write("</ol>\n")
            documents = claim.evidence.filter(side=ClaimEvidence.Side.CLAIMANT).order_by("pk")
            if documents:
                text.write("<p>Evidence you filed: ")
                text.write(
                    ", ".join(_link(_evidence_path(item), item.filename) for item in documents)
                )
                text.write("</p>\n")
        if not claims:
            text.write("<p>None.</p>\n")
        text.write("<h2>Invoices and credit notes</h2>\n")
        _table(
            text,
            ["Number", "Kind", "Issued on", "Total", "Still due", "PDF"],
            (
                [e(i.number), e(i.get_kind_display()), e(i.issued_on.isoformat()),
                 e(money(i.total, i.currency)), e(money(i.due, i.currency)),
                 _link(_invoice_path(i), "PDF")]
                for i in _invoices(organisation).iterator(chunk_size=CHUNK_ROWS)
            ),
        )  # fmt: skip
        text.write("</body>\n</html>\n")


CSV_FILES = [
    ("deposits.csv", "every deposit of the products escrow covers for you, with its manifest "
     "summary, the sites holding copies and the file names of its certificate and manifest"),
    ("claims.csv", "your release claims"),
    ("claim_history.csv", "what happened to each claim, one sentence per step"),
    ("invoices.csv", "your invoices and credit notes, with what is paid and still due"),
    ("payments.csv", "the payments received for your invoices"),
    ("subscriptions.csv", "your escrow subscriptions"),
    ("licences.csv", "your licences, on which the escrow fee is based"),
    ("users.csv", "your organisation's users (never their passwords)"),
    ("notifications.csv", "the messages we sent your organisation"),
    ("activity.csv", "what your people did and what happened to your subscriptions, "
     "invoices and exports, one sentence each"),
    ("data_exports.csv", "the data exports you requested"),
]  # fmt: skip


def _readme(organisation: Organisation, made_at: datetime) -> str:
    files = "\n".join(f"  {name:<20} {about}" for name, about in CSV_FILES)
    return f"""Data export of {organisation.name}
Made on {_utc(made_at)} by the software escrow service.

This folder holds everything the escrow service keeps for your organisation, in
files that open without the escrow service's software.

HOW TO OPEN IT
  Unpack the ZIP file, then open index.html in any web browser: it lists every
  deposit, claim and invoice and links to the files in this folder. Nothing is
  fetched from the internet.
  The .csv files open in any spreadsheet (LibreOffice Calc, Excel, Numbers) or
  text editor. They are UTF-8, comma-separated, with a header row. Dates are
  written YYYY-MM-DD, times in UTC as YYYY-MM-DDTHH:MM:SSZ, and money with its
  currency ("EUR 1,234.50"). A text cell that would start with =, +, - or @
  starts with an apostrophe, so that no spreadsheet runs it as a formula.

WHAT IS IN IT
{files}
  deposits/<product>/<version>/certificate.pdf
                       the deposit certificate the escrow service issued
  deposits/<product>/<version>/manifest.json
                       the deposit's manifest: every file in the archive, with
                       its size and SHA-256 (JSON, opens in any text editor)
  deposits/<product>/<version>/manifest.sig
                       the escrow service's Ed25519 signature of manifest.json
  invoices/            your invoices and credit notes as PDF
  documents/           the evidence you filed with release claims
  SHA256SUMS           the SHA-256 of every other file in this export

The source code held in escrow is not part of this export: it stays sealed for
the notary, who releases it only when a release claim is approved.

HOW TO CHECK THE FILES
  Every file is listed in SHA256SUMS with its SHA-256. In a terminal, in this
  folder:
      sha256sum -c SHA256SUMS          (Linux)
      shasum -a 256 -c SHA256SUMS      (macOS)
  Each file should say OK. On Windows, "certutil -hashfile <file> SHA256" prints
  the hash of one file to compare with its line in SHA256SUMS.
  The SHA-256 of a deposit's manifest.json is its "Manifest SHA-256" in the
  certificate and in deposits.csv; the certificate also gives the escrow
  service's public key, with which manifest.sig (base64) verifies manifest.json.
"""


def export_files_write(archive: zipfile.ZipFile, *, organisation: Organisation) -> None:
    """Write the whole export of ``organisation`` into ``archive``."""
    made_at = timezone.now()
    out = ExportArchive(archive)
    out.write("README.txt", _readme(organisation, made_at).encode())
    _write_index(out, organisation, made_at)
    _write_csv_files(out, organisation)
    _write_documents(out, organisation)
    sums = "".join(f"{digest}  {name}\n" for digest, name in out.sums)
    archive.writestr("SHA256SUMS", sums)
