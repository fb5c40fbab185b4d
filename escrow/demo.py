"""Demo data for the embedded default: one vendor, five customers, a notary, staff,
and a past that shows every journey on the first day.

The past is lived, not written: each earlier event (a licence signed, a year paid,
a deposit made, a claim filed, a renewal left unpaid) runs the real service under
a clock moved back to its moment, oldest first, so invoices, deadlines, audit rows
and notifications carry the dates they would have had.

Idempotent: running it again finds what exists, creates what is missing,
sets the demo users' passwords to the ones given, and replaces the demo
pipeline token (its secret is only ever shown once)."""

from __future__ import annotations

import base64
import hashlib
import heapq
import io
import itertools
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Organisation, Product, Role, User
from billing.models import Invoice, LicenceAgreement, Subscription
from billing.payments import payment_record
from billing.periods import add_years
from billing.services import (
    licence_create,
    subscription_subscribe,
    subscriptions_lapse_overdue,
    subscriptions_renew_due,
)
from escrow.models import (
    ClaimState,
    Deposit,
    DepositState,
    DepositToken,
    NotaryRecipient,
    ReleaseClaim,
    ReleaseCondition,
    ReleaseKey,
)
from escrow.services.claims import (
    claim_contest_by_vendor,
    claim_file,
    claim_notify_vendor,
    claims_contest_elapsed,
)
from escrow.services.deposits import deposit_acknowledge
from escrow.services.evidence import Upload
from escrow.services.intake import deposit_receive
from escrow.services.release_keys import release_key_set
from escrow.services.replication import deposit_replicate_copies
from escrow.services.tokens import IssuedToken, token_create, token_revoke
from transparency.services import checkpoint_latest, witness_key_active, witness_key_add
from vault import sshsig
from vault.age import X25519Identity, parse_identity_file

DEMO_TOTP_DEVICE = "demo authenticator"
# What the demo creates, by name, so `manage.py check --deploy` can refuse it in
# production (escrow/checks.py): its users have printed passwords, its notary key's
# identity lies in a file under var/ and its authenticator's secret is printed.
DEMO_USER_EMAILS = (
    "staff@acme.example",
    "alice@northwind.example",
    "carol@contoso.example",
    "frank@fabrikam.example",
    "tom@tailspin.example",
    "wendy@woodgrove.example",
    "notary@notaris.example",
)
DEMO_ORGANISATIONS = {
    "Acme Software B.V.": "legal@acme.example",
    "Northwind Logistics B.V.": "it@northwind.example",
    "Contoso GmbH": "it@contoso.example",
    "Fabrikam Retail N.V.": "it@fabrikam.example",
    "Tailspin Travel B.V.": "it@tailspin.example",
    "Woodgrove Bank AG": "it@woodgrove.example",
}
DEMO_NOTARY_KEY_LABEL = "Demo identity file"

T = TypeVar("T")


def demo_refusal(*, debug: bool, secure: bool) -> str:
    """Why ``manage.py demo`` may not run here ("" when it may). The demo creates users
    with known passwords and a notary key whose identity is a file on this machine, so it
    runs only on a development set-up: DEBUG on (``make run`` sets DJANGO_DEBUG=true)
    and the deploy settings (DJANGO_SECURE=true: HTTPS, secure cookies, HSTS) off."""
    if not debug:
        return (
            "Refusing to load demo data: DEBUG is off, as in production. The demo creates "
            "users with printed passwords and a notary key whose identity lies on disk, so "
            "it runs only on a development set-up: set DJANGO_DEBUG=true (as `make run` "
            "does) and leave DJANGO_SECURE unset."
        )
    if secure:
        return (
            "Refusing to load demo data: the deploy settings are in force (DJANGO_SECURE="
            "true). The demo creates users with printed passwords and a notary key whose "
            "identity lies on disk; it runs only with DJANGO_DEBUG=true and DJANGO_SECURE "
            "unset, never in production."
        )
    return ""


@dataclass
class DemoLogin:
    door: str
    url: str
    email: str
    password: str
    note: str = ""


@dataclass
class DemoJourney:
    """Where one journey starts: a page (a path on the site) and who signs in to see it."""

    title: str
    path: str
    email: str
    note: str = ""


@dataclass
class DemoResult:
    logins: list[DemoLogin] = field(default_factory=list)
    journeys: list[DemoJourney] = field(default_factory=list)
    identity_path: Path | None = None
    notary_recipient: str = ""
    totp_secret: str = ""
    staff_totp_secret: str = ""
    pipeline_token: str = ""
    release_key_path: Path | None = None
    witness_key_path: Path | None = None
    deposits: list[Deposit] = field(default_factory=list)


DEMO_TOKEN_LABEL = "demo pipeline"


def _demo_token(product: Product, staff: User) -> IssuedToken:
    """A fresh token each run (a secret is shown only once); the previous demo token goes."""
    for old in DepositToken.objects.filter(
        product=product, label=DEMO_TOKEN_LABEL, revoked_at__isnull=True
    ):
        token_revoke(token=old, actor=staff, reason="replaced by a new demo token")
    return token_create(product=product, label=DEMO_TOKEN_LABEL, actor=staff)


def _demo_archive(product: Product, version: str) -> bytes:
    """A small, complete source tree: README, licence, build file, lock file, code,
    its files dated an hour before the (possibly moved) clock, like a fresh build."""
    files = {
        f"{product.slug}-{version}/README.md": f"# {product.name} {version}\n\nBuild: make\n",
        f"{product.slug}-{version}/LICENSE": "Proprietary. Held in escrow for licensees.\n",
        f"{product.slug}-{version}/Makefile": "all:\n\tcc -O2 -o app src/main.c\n",
        f"{product.slug}-{version}/package-lock.json": '{"lockfileVersion": 3}\n',
        f"{product.slug}-{version}/src/main.c": f"int main(void) {{ return 0; }} /* {version} */\n",
    }
    built = int(time.time()) - 3600
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), built, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _existing_deposit(product: Product, version: str) -> Deposit | None:
    return (
        Deposit.objects.filter(product=product, version=version)
        .exclude(state=DepositState.REJECTED)
        .first()
    )


def _demo_deposit(token: DepositToken, version: str) -> Deposit:
    existing = _existing_deposit(token.product, version)
    if existing is not None:
        return existing
    body = _demo_archive(token.product, version)
    received = deposit_receive(
        token=token,
        version=version,
        body=io.BytesIO(body),
        claimed_sha256=hashlib.sha256(body).hexdigest(),
        content_length=len(body),
        pipeline={"commit": hashlib.sha1(body).hexdigest(), "build_url": "https://ci.example/demo"},
    )
    deposit = received.deposit
    deposit.refresh_from_db()
    if deposit.state == DepositState.STORED:
        # The replication task is queued too; running it here means the demo does not
        # depend on a worker being up. The queued task finds nothing left to do.
        deposit_replicate_copies(deposit=deposit)
        deposit.refresh_from_db()
    return deposit


def _evidence_pdf(title: str, lines: list[str]) -> bytes:
    """A one-page PDF of a few lines of text: evidence the notary and the vendor can
    open in any PDF reader (the portal accepts PDFs by their content)."""
    commands = ["BT", "/F1 16 Tf", "72 770 Td", "22 TL", f"({_pdf_text(title)}) Tj T*"]
    commands += ["/F1 11 Tf", "16 TL"] + [f"({_pdf_text(line)}) Tj T*" for line in lines]
    stream = "\n".join([*commands, "ET"]).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(pdf)


def _pdf_text(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _organisation(
    name: str,
    kind: str,
    country: str,
    email: str,
    address: str,
    vat: str = "",
    time_zone: str = "",
) -> Organisation:
    organisation, _ = Organisation.objects.get_or_create(
        name=name,
        defaults={
            "kind": kind,
            "country": country,
            "contact_email": email,
            "vat_number": vat,
            "address": address,
            "time_zone": time_zone,
        },
    )
    return organisation


def _user(
    email: str, full_name: str, role: str, password: str, organisation: Organisation | None = None
) -> User:
    user = User.objects.filter(email=email).first()
    if user is None:
        return User.objects.create_user(
            email, password, full_name=full_name, role=role, organisation=organisation
        )
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


def _licence(
    customer: Organisation, product: Product, fee: str, start: date, staff: User
) -> LicenceAgreement:
    existing = LicenceAgreement.objects.filter(customer=customer, product=product).first()
    if existing is not None:
        return existing
    return licence_create(
        customer=customer,
        product=product,
        annual_fee=Decimal(fee),
        currency="EUR",
        start_date=start,
        actor=staff,
    )


def _identity_file(identity_path: Path, whose: str) -> X25519Identity:
    """Reuse the identity file from an earlier run, or generate one. The file is a
    private key: it goes to disk for the demo, never to the database."""
    if identity_path.exists():
        found = parse_identity_file(identity_path.read_text())[0]
        if isinstance(found, X25519Identity):
            return found
    identity = X25519Identity.generate()
    identity_path.parent.mkdir(parents=True, exist_ok=True)
    identity_path.touch(mode=0o600)
    identity_path.write_text(
        f"# Demo {whose} identity generated by `manage.py demo`.\n"
        f"# public key: {identity.recipient().to_string()}\n{identity.to_string()}\n"
    )
    return identity


class _Past:
    """The demo's history, run in the order it happened, each event under a clock
    moved back to its moment (``time_machine``, ticking, so a step takes real time).

    An event may schedule a later one (the scheduler moving a claim on once its
    contest period ends: a deadline known only when the claim is filed); the queue
    runs every event in order of its moment, so the audit log, invoice numbers and
    dates and the notifications read as one timeline. An event due at or after the
    real present runs at the present."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._queue: list[tuple[datetime, int, Callable[[], object]]] = []
        self._order = itertools.count()
        self._reached = datetime.min.replace(tzinfo=now.tzinfo)

    def day(self, days_ago: int, hour: int, minute: int = 0) -> datetime:
        """``hour:minute`` UTC, ``days_ago`` (at least 1) days back: always before today."""
        if days_ago < 1:
            raise ValueError(f"the demo's history lies in the past, not {days_ago} days ago")
        return (self.now - timedelta(days=days_ago)).replace(
            hour=hour, minute=minute, second=0, microsecond=0
        )

    def at(self, moment: datetime, event: Callable[[], object]) -> None:
        """Schedule ``event`` for ``moment``; never before what has already happened."""
        if moment < self._reached:
            raise ValueError(f"an event at {moment} cannot follow one at {self._reached}")
        heapq.heappush(self._queue, (moment, next(self._order), event))

    def run_at(self, moment: datetime, event: Callable[[], T]) -> T:
        """Run ``event`` now, on a clock showing ``moment`` (the present if it is not past)."""
        # Imported here, not at the top: time-machine is a development dependency
        # (requirements-dev.lock, which `make run` installs), and the demo runs only
        # on a development set-up (see demo_refusal).
        try:
            import time_machine
        except ImportError as missing:
            raise ImproperlyConfigured(
                "The demo lives its past on a moved clock and needs time-machine, a "
                "development dependency: install requirements-dev.lock (`make run` does)."
            ) from missing

        self._reached = max(self._reached, moment)
        if moment >= self.now:
            return event()
        with time_machine.travel(moment, tick=True):
            return event()

    def run(self) -> None:
        while self._queue:
            moment, _, event = heapq.heappop(self._queue)
            self.run_at(moment, event)


@dataclass
class _Cast:
    vendor: Organisation
    northwind: Organisation
    contoso: Organisation
    fabrikam: Organisation
    tailspin: Organisation
    woodgrove: Organisation
    ledger: Product
    fleet: Product
    payroll: Product
    staff: User
    alice: User
    carol: User
    frank: User
    tom: User
    wendy: User
    notary: User
    totp_device: TOTPDevice
    staff_totp_device: TOTPDevice


def _cast(password: str, identity: X25519Identity) -> _Cast:
    """The organisations, products and people, the notary's seal key and the two
    authenticators: in place before anything else happens."""
    vendor = _organisation(
        "Acme Software B.V.",
        "vendor",
        "NL",
        "legal@acme.example",
        "Keizersgracht 100\n1015 CV Amsterdam\nNetherlands",
        "NL001234567B01",
        "Europe/Amsterdam",
    )
    customers = {
        name: _organisation(name, "customer", country, email, address, vat)
        for name, country, email, address, vat in [
            (
                "Northwind Logistics B.V.",
                "NL",
                "it@northwind.example",
                "Havenweg 12\n3089 JB Rotterdam\nNetherlands",
                "",
            ),
            (
                "Contoso GmbH",
                "DE",
                "it@contoso.example",
                "Friedrichstraße 45\n10117 Berlin\nGermany",
                "DE123456789",
            ),
            (
                "Fabrikam Retail N.V.",
                "BE",
                "it@fabrikam.example",
                "Meir 20\n2000 Antwerpen\nBelgium",
                "BE0123456789",
            ),
            (
                "Tailspin Travel B.V.",
                "NL",
                "it@tailspin.example",
                "Stationsplein 8\n3511 ED Utrecht\nNetherlands",
                "",
            ),
            (
                "Woodgrove Bank AG",
                "AT",
                "it@woodgrove.example",
                "Kärntner Ring 5\n1010 Wien\nAustria",
                "ATU12345678",
            ),
        ]
    }
    products = {}
    for slug, name, description in [
        ("ledger-pro", "Ledger Pro", "Double-entry accounting for mid-size companies."),
        ("fleet-planner", "Fleet Planner", "Route and vehicle planning."),
        ("payroll-classic", "Payroll Classic", "Payroll and payslips, in maintenance mode."),
    ]:
        products[slug], _ = Product.objects.get_or_create(
            slug=slug, defaults={"vendor": vendor, "name": name, "description": description}
        )

    def customer(email: str, full_name: str, organisation: str) -> User:
        user = _user(email, full_name, Role.CUSTOMER, password, customers[organisation])
        if not user.is_organisation_admin:  # each organisation's demo user is its admin
            User.objects.filter(pk=user.pk).update(is_organisation_admin=True)
            user.is_organisation_admin = True
        return user

    notary = _user("notary@notaris.example", "Mr. N. Otaris", Role.NOTARY, password)
    staff = _user("staff@acme.example", "Sam Staff", Role.STAFF, password)
    NotaryRecipient.objects.get_or_create(
        public_key=identity.recipient().to_string(),
        defaults={"notary": notary, "label": DEMO_NOTARY_KEY_LABEL},
    )
    totp_device, _ = TOTPDevice.objects.get_or_create(
        user=notary, name=DEMO_TOTP_DEVICE, defaults={"confirmed": True}
    )
    staff_totp_device, _ = TOTPDevice.objects.get_or_create(
        user=staff, name=DEMO_TOTP_DEVICE, defaults={"confirmed": True}
    )
    return _Cast(
        vendor=vendor,
        northwind=customers["Northwind Logistics B.V."],
        contoso=customers["Contoso GmbH"],
        fabrikam=customers["Fabrikam Retail N.V."],
        tailspin=customers["Tailspin Travel B.V."],
        woodgrove=customers["Woodgrove Bank AG"],
        ledger=products["ledger-pro"],
        fleet=products["fleet-planner"],
        payroll=products["payroll-classic"],
        staff=staff,
        alice=customer("alice@northwind.example", "Alice Jansen", "Northwind Logistics B.V."),
        carol=customer("carol@contoso.example", "Carol Weber", "Contoso GmbH"),
        frank=customer("frank@fabrikam.example", "Frank Peeters", "Fabrikam Retail N.V."),
        tom=customer("tom@tailspin.example", "Tom de Vries", "Tailspin Travel B.V."),
        wendy=customer("wendy@woodgrove.example", "Wendy Huber", "Woodgrove Bank AG"),
        notary=notary,
        totp_device=totp_device,
        staff_totp_device=staff_totp_device,
    )


# The events of the demo's history. Each is idempotent: it does what is missing and
# leaves what a previous run (or a person since) did.


def _sign_licence(
    customer: Organisation, product: Product, fee: str, start: date, staff: User
) -> None:
    _licence(customer, product, fee, start, staff)


def _licence_of(customer: Organisation, product: Product) -> LicenceAgreement:
    return LicenceAgreement.objects.get(customer=customer, product=product)


def _subscribe(customer: Organisation, product: Product, actor: User) -> None:
    """Subscribed in the portal, accepting the escrow terms: the first invoice is issued."""
    licence = _licence_of(customer, product)
    if not Subscription.objects.filter(licence=licence).exists():
        subscription_subscribe(licence=licence, actor=actor, accept_terms=True)


def _pay_first_invoice(customer: Organisation, product: Product, staff: User) -> None:
    """Staff record the payment of the first invoice, received today (on the moved clock)."""
    invoice = (
        Invoice.objects.filter(
            subscription__licence=_licence_of(customer, product), kind=Invoice.Kind.INVOICE
        )
        .order_by("issued_on", "pk")
        .first()
    )
    if invoice is not None and not invoice.is_settled:
        payment_record(
            invoice_number=invoice.number,
            amount=invoice.amount_due(),
            received_on=timezone.localdate(),
            actor=staff,
        )


def _register_release_key(actor: User, identity: X25519Identity) -> None:
    """The customer registers the age key a release will be encrypted to."""
    if not ReleaseKey.objects.filter(organisation=actor.organisation).exists():
        release_key_set(
            actor=actor,
            method=ReleaseKey.Method.RECIPIENT,
            recipient=identity.recipient().to_string(),
        )


def _deposit(product: Product, version: str, staff: User) -> None:
    """The vendor's release pipeline deposits a build, with a token issued for it."""
    if _existing_deposit(product, version) is None:
        _demo_deposit(_demo_token(product, staff).token, version)


def _witness_key_file(path: Path) -> Path:
    """The demo notary's witness key (SSH Ed25519), made once with the real ssh-keygen,
    as a notary would (docs/security.md); reused on later runs. A private key: it goes
    to disk for the demo, never to the database."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            raise ImproperlyConfigured(
                "The demo notary's witness key is made with ssh-keygen: install openssh-client."
            )
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "demo notary witness", "-f", str(path)],
            check=True,
        )
    return path


def _acknowledge(product: Product, version: str, notary: User, witness_key: Path) -> None:
    """The notary acknowledges, co-signing the log's checkpoint with its witness key as
    ``ssh-keygen -Y sign`` would (Ed25519 SSHSIG is deterministic: the same bytes)."""
    deposit = _existing_deposit(product, version)
    if deposit is not None and deposit.state == DepositState.REPLICATED:
        checkpoint = checkpoint_latest()
        signature = None
        if checkpoint is not None and witness_key_active(notary) is not None:
            private = serialization.load_ssh_private_key(witness_key.read_bytes(), None)
            assert isinstance(private, Ed25519PrivateKey)
            signature = sshsig.sign(checkpoint.body.encode(), private, sshsig.namespace("witness"))
        deposit_acknowledge(
            deposit=deposit,
            notary=notary,
            witness_signature=signature,
            checkpoint_size=checkpoint.size if checkpoint is not None else None,
        )


def _renewals_job() -> None:
    """The scheduler's daily renewal run, that day."""
    subscriptions_renew_due(today=timezone.localdate())


def _lapses_job() -> None:
    """The scheduler's daily lapse run, that day."""
    subscriptions_lapse_overdue(today=timezone.localdate())


def _contest_periods_job() -> None:
    """The scheduler's run that moves claims on whose contest period has ended."""
    claims_contest_elapsed(now=timezone.now())


@dataclass(frozen=True)
class _Document:
    """A piece of evidence: a one-page PDF with a title and a few lines."""

    name: str
    title: str
    lines: tuple[str, ...]

    def upload(self) -> Upload:
        return Upload(name=self.name, content=_evidence_pdf(self.title, list(self.lines)))


def _file_claim(
    *,
    filed_by: User,
    product: Product,
    condition: str,
    statement: str,
    evidence: _Document,
    then: Callable[[ReleaseClaim], None],
) -> None:
    """A customer files a claim with its evidence and the vendor is told at once (the
    queued task does that; called here too, so the demo needs no worker). ``then``
    schedules what happens to the claim next. A claim filed by an earlier run, even
    one decided since, is left as it is."""
    assert filed_by.organisation is not None
    if ReleaseClaim.objects.filter(claimant=filed_by.organisation, product=product).exists():
        return
    claim = claim_file(
        product=product,
        filed_by=filed_by,
        condition=condition,
        statement=statement,
        uploads=[evidence.upload()],
    )
    claim.refresh_from_db()
    if claim.state == ClaimState.FILED:
        claim_notify_vendor(claim=claim)
        claim.refresh_from_db()
    then(claim)


def _vendor_contests(claim_id: int) -> None:
    """Acme contests through its claim link, with a statement and its own evidence."""
    claim = ReleaseClaim.objects.get(pk=claim_id)
    if claim.state != ClaimState.VENDOR_NOTIFIED:
        return
    roadmap = _Document(
        "ledger-pro-roadmap.pdf",
        "Ledger Pro roadmap",
        (
            "New licences: no longer sold.",
            "Maintenance for existing customers: guaranteed until the end of next year.",
            "Version 1.1.0: in release.",
        ),
    )
    claim_contest_by_vendor(
        claim=claim,
        statement=(
            "Ledger Pro has not reached its end of life: we stopped selling new licences "
            "but maintain it for existing customers until at least the end of next year "
            "(see the enclosed roadmap). Version 1.1.0 is being released."
        ),
        uploads=[roadmap.upload()],
    )


def _renewal_lateness() -> int:
    """How many days after the paid year ends a renewal invoice falls due (0 when the
    payment terms are no longer than the renewal notice, as by default)."""
    return max(0, settings.ESCROW_PAYMENT_TERMS_DAYS - settings.ESCROW_RENEWAL_NOTICE_DAYS)


def _history_offsets() -> dict[str, int]:
    """How many days ago each story starts. They follow the settings, so every journey
    stands where it should today whatever the terms, grace and notice periods."""
    # Filed this long ago, a claim's contest period (business days, less weekends and
    # public holidays) ended about two weeks ago.
    ready_claim = settings.ESCROW_CONTEST_BUSINESS_DAYS * 7 // 5 + 14
    return {
        # Tailspin paid one year and left the renewal unpaid: lapsed about ten days ago.
        # (A renewal falls due when the paid year ends, or later with long payment terms.)
        "tailspin": 365 + settings.ESCROW_PAYMENT_GRACE_DAYS + _renewal_lateness() + 11,
        # Payroll Classic's last deposit: older than the staleness threshold.
        "payroll_deposit": settings.ESCROW_STALE_DEPOSIT_DAYS + 110,
        "fabrikam": settings.ESCROW_STALE_DEPOSIT_DAYS + 100,
        "northwind": max(150, ready_claim + 20),
        "ledger_deposit": max(100, ready_claim + 10),
        "ready_claim": ready_claim,
        # Woodgrove's first invoice fell due a week ago.
        "woodgrove": settings.ESCROW_PAYMENT_TERMS_DAYS + 7,
        "contested_claim": 6,
        "fleet_deposit": 3,
        "ledger_second_deposit": 2,
    }


def _history(past: _Past, cast: _Cast, release_identity: X25519Identity, witness_key: Path) -> None:
    """Schedule every event of the demo's past.

    Long because it is a script: the stories one after the other, each read top to
    bottom like the README that introduces them."""
    days = _history_offsets()
    today = past.now.date()
    staff, notary = cast.staff, cast.notary

    def on(story: str, *, later: int = 0) -> date:
        return today - timedelta(days=days[story] - later)

    def at(story: str, hour: int, minute: int = 0, *, later: int = 0) -> datetime:
        return past.day(days[story] - later, hour, minute)

    # Northwind licenses Ledger Pro and Fleet Planner, subscribes Ledger Pro to escrow,
    # pays, and registers the key a release will be encrypted to.
    for minute, product, fee in [(0, cast.ledger, "12000.00"), (5, cast.fleet, "4999.99")]:
        past.at(
            at("northwind", 9, minute),
            partial(_sign_licence, cast.northwind, product, fee, on("northwind"), staff),
        )
    past.at(at("northwind", 10), partial(_subscribe, cast.northwind, cast.ledger, cast.alice))
    past.at(
        at("northwind", 11, later=2),
        partial(_pay_first_invoice, cast.northwind, cast.ledger, staff),
    )
    past.at(
        at("northwind", 14, later=3), partial(_register_release_key, cast.alice, release_identity)
    )
    # Contoso licenses Fleet Planner; Carol subscribes in the portal (a journey of today).
    # Its licence year began 100 days ago, so her first period runs to the anniversary.
    contoso_start = today - timedelta(days=100)
    past.at(
        at("northwind", 9, later=5),
        partial(_sign_licence, cast.contoso, cast.fleet, "8000.00", contoso_start, staff),
    )

    # Tailspin pays a year of Fleet Planner, leaves the renewal unpaid, and lapses.
    tailspin_end = add_years(on("tailspin"), 1)
    past.at(
        at("tailspin", 9),
        partial(_sign_licence, cast.tailspin, cast.fleet, "6000.00", on("tailspin"), staff),
    )
    past.at(at("tailspin", 10), partial(_subscribe, cast.tailspin, cast.fleet, cast.tom))
    past.at(
        at("tailspin", 11, later=3), partial(_pay_first_invoice, cast.tailspin, cast.fleet, staff)
    )
    renewal = tailspin_end - timedelta(days=settings.ESCROW_RENEWAL_NOTICE_DAYS)
    past.at(past.day((today - renewal).days, 6), _renewals_job)
    lapse = tailspin_end + timedelta(
        days=settings.ESCROW_PAYMENT_GRACE_DAYS + _renewal_lateness() + 1
    )
    past.at(past.day((today - lapse).days, 6), _lapses_job)

    # Payroll Classic: deposited long ago and acknowledged; nothing since.
    past.at(at("payroll_deposit", 15), partial(_deposit, cast.payroll, "3.2.0", staff))
    past.at(
        at("payroll_deposit", 10, later=1),
        partial(_acknowledge, cast.payroll, "3.2.0", notary, witness_key),
    )

    # Fabrikam subscribes Ledger Pro and Payroll Classic, and pays both.
    for minute, product, fee in [(0, cast.ledger, "9000.00"), (10, cast.payroll, "3000.00")]:
        past.at(
            at("fabrikam", 9, minute),
            partial(_sign_licence, cast.fabrikam, product, fee, on("fabrikam"), staff),
        )
        past.at(at("fabrikam", 10, minute), partial(_subscribe, cast.fabrikam, product, cast.frank))
        past.at(
            at("fabrikam", 11, minute, later=4),
            partial(_pay_first_invoice, cast.fabrikam, product, staff),
        )

    # Ledger Pro 1.0.0: deposited and acknowledged, the deposit a release hands over.
    past.at(at("ledger_deposit", 15), partial(_deposit, cast.ledger, "1.0.0", staff))
    past.at(
        at("ledger_deposit", 10, later=1),
        partial(_acknowledge, cast.ledger, "1.0.0", notary, witness_key),
    )

    # Northwind claims a release of Ledger Pro. Acme does not contest; when the contest
    # period ends the scheduler hands the claim to the notary, who has not decided yet.
    def once_the_contest_period_ends(claim: ReleaseClaim) -> None:
        assert claim.contest_deadline is not None
        past.at(claim.contest_deadline + timedelta(minutes=7), _contest_periods_job)

    ticket = _Document(
        "support-ticket-LP-4711.pdf",
        "Support ticket LP-4711: the year-end closing fails",
        (
            "Reported by Northwind Logistics B.V. (Alice Jansen) to Acme Software B.V.",
            "Severity: critical. Ledger Pro 1.0.0 cannot close the financial year.",
            "Cure period under the support agreement: 60 days.",
            "At the end of the cure period: open, no fix, no workaround.",
        ),
    )
    past.at(
        at("ready_claim", 10),
        partial(
            _file_claim,
            filed_by=cast.alice,
            product=cast.ledger,
            condition=ReleaseCondition.MAINTENANCE_FAILURE,
            statement=(
                "Acme has not fixed the year-end closing defect in Ledger Pro (ticket "
                "LP-4711, enclosed). The 60-day cure period of our support agreement "
                "ended without a fix or a workaround."
            ),
            evidence=ticket,
            then=once_the_contest_period_ends,
        ),
    )

    # Woodgrove subscribes Ledger Pro and never pays: its invoice is overdue.
    past.at(
        at("woodgrove", 9),
        partial(_sign_licence, cast.woodgrove, cast.ledger, "7500.00", on("woodgrove"), staff),
    )
    past.at(at("woodgrove", 10), partial(_subscribe, cast.woodgrove, cast.ledger, cast.wendy))

    # Fabrikam claims Ledger Pro has reached its end of life; Acme contests two days later.
    def the_vendor_contests(claim: ReleaseClaim) -> None:
        assert claim.contest_deadline is not None
        moment = min(timezone.now() + timedelta(days=2), claim.contest_deadline)
        past.at(moment - timedelta(hours=1), partial(_vendor_contests, claim.pk))

    letter = _Document(
        "end-of-life-letter.pdf",
        "Acme Software B.V. to its Ledger Pro customers",
        (
            "Dear customer,",
            "we have stopped selling Ledger Pro. No successor product is planned.",
        ),
    )
    past.at(
        at("contested_claim", 9, 30),
        partial(
            _file_claim,
            filed_by=cast.frank,
            product=cast.ledger,
            condition=ReleaseCondition.END_OF_LIFE,
            statement=(
                "Acme announced the end of Ledger Pro without a successor product; see "
                "the enclosed letter."
            ),
            evidence=letter,
            then=the_vendor_contests,
        ),
    )

    # Recent builds, not acknowledged by the notary yet.
    past.at(at("fleet_deposit", 16), partial(_deposit, cast.fleet, "2.3.1", staff))
    past.at(at("ledger_second_deposit", 16), partial(_deposit, cast.ledger, "1.1.0", staff))


def demo_load(*, password: str, identity_path: Path) -> DemoResult:
    """Create (or complete) the demo data set and return the logins and the journeys
    to print.

    The cast is in place first; then its history runs, oldest event first, on a clock
    moved back to each event (``_history``); then today's part: a fresh pipeline token,
    and where each journey starts."""
    result = DemoResult(identity_path=identity_path)
    identity = _identity_file(identity_path, "notary")
    result.release_key_path = identity_path.with_name("northwind-release-key.txt")
    release_identity = _identity_file(result.release_key_path, "Northwind release key")

    past = _Past(timezone.now())
    beginning = past.day(max(_history_offsets().values()) + 1, 8)
    cast = past.run_at(beginning, lambda: _atomic_cast(password, identity))
    result.witness_key_path = _witness_key_file(identity_path.with_name("notary-witness-key"))
    witness_line = result.witness_key_path.with_suffix(".pub").read_text()
    past.run_at(
        beginning, lambda: witness_key_add(notary=cast.notary, public_key_line=witness_line)
    )
    _history(past, cast, release_identity, result.witness_key_path)
    past.run()

    # Today: a fresh pipeline token each run, since its secret is shown only once. (The
    # deposits went through the real pipeline in the past: check, manifest, seal,
    # store, replicate.)
    token = _demo_token(cast.ledger, cast.staff)
    _demo_token(cast.fleet, cast.staff)
    for product, version in [
        (cast.ledger, "1.0.0"),
        (cast.ledger, "1.1.0"),
        (cast.fleet, "2.3.1"),
        (cast.payroll, "3.2.0"),
    ]:
        deposit = _existing_deposit(product, version)
        if deposit is not None:
            result.deposits.append(deposit)
    result.pipeline_token = token.secret
    result.notary_recipient = identity.recipient().to_string()
    result.totp_secret = base64.b32encode(cast.totp_device.bin_key).decode().rstrip("=")
    result.staff_totp_secret = base64.b32encode(cast.staff_totp_device.bin_key).decode().rstrip("=")
    result.logins = _logins(cast, password)
    result.journeys = _journeys(cast)
    return result


def _atomic_cast(password: str, identity: X25519Identity) -> _Cast:
    with transaction.atomic():
        return _cast(password, identity)


def _logins(cast: _Cast, password: str) -> list[DemoLogin]:
    totp = "then the TOTP code: `python manage.py demo_totp"
    customers = [
        (cast.alice, "Northwind: active, a claim with the notary"),
        (cast.carol, "Contoso: no subscription yet"),
        (cast.frank, "Fabrikam: a contested claim, a stale product"),
        (cast.tom, "Tailspin: subscription lapsed"),
        (cast.wendy, "Woodgrove: invoice overdue"),
    ]
    return [
        *(
            DemoLogin("Customer portal", "/portal/", user.email, password, note)
            for user, note in customers
        ),
        DemoLogin("Notary portal", "/notary/", cast.notary.email, password, f"{totp}`"),
        DemoLogin("Staff admin", "/admin/", cast.staff.email, password, f"{totp} --staff`"),
    ]


def _journeys(cast: _Cast) -> list[DemoJourney]:
    """Where each journey of the demo starts, found in the data as it stands now (a
    person may have moved a claim or paid an invoice since an earlier run)."""
    journeys = [
        DemoJourney(
            "Northwind's dashboard: cover, deposits, release key",
            "/portal/",
            cast.alice.email,
        )
    ]
    ready = ReleaseClaim.objects.filter(claimant=cast.northwind, product=cast.ledger).first()
    if ready is not None:
        journeys.append(
            DemoJourney(
                "Claim whose contest period has ended, ready for the notary's decision",
                f"/notary/claims/{ready.pk}/",
                cast.notary.email,
                f"now {ready.get_state_display().lower()}",
            )
        )
    contested = ReleaseClaim.objects.filter(claimant=cast.fabrikam, product=cast.ledger).first()
    if contested is not None:
        journeys.append(
            DemoJourney(
                "Claim the vendor contested, with both sides' evidence",
                f"/notary/claims/{contested.pk}/",
                cast.notary.email,
                f"now {contested.get_state_display().lower()}",
            )
        )
    journeys.append(
        DemoJourney(
            "What the notary was told: claims ready for review, a contest",
            "/notary/notifications/",
            cast.notary.email,
        )
    )
    lapsed = Subscription.objects.filter(licence__customer=cast.tailspin).first()
    unpaid = _open_invoice(cast.tailspin)
    journeys.append(
        DemoJourney(
            "Lapsed subscription (Tailspin, Fleet Planner)",
            f"/portal/products/{cast.fleet.slug}/",
            cast.tom.email,
            f"{lapsed.get_state_display().lower() if lapsed else 'none'}"
            + (f"; staff record invoice {unpaid.number}'s payment to reactivate" if unpaid else ""),
        )
    )
    overdue = _open_invoice(cast.woodgrove)
    journeys.append(
        DemoJourney(
            "Overdue invoice (Woodgrove)",
            "/portal/invoices/",
            cast.wendy.email,
            f"invoice {overdue.number}, due {overdue.due_on:%Y-%m-%d}" if overdue else "paid",
        )
    )
    journeys.append(
        DemoJourney(
            "Product whose last deposit is stale (Payroll Classic)",
            f"/portal/products/{cast.payroll.slug}/",
            cast.frank.email,
            f"older than {settings.ESCROW_STALE_DEPOSIT_DAYS} days; Frank may claim a release",
        )
    )
    contoso_licence = LicenceAgreement.objects.filter(customer=cast.contoso).first()
    if contoso_licence is not None:
        journeys.append(
            DemoJourney(
                "Subscribe to escrow: the period and the amount first",
                f"/portal/licences/{contoso_licence.pk}/subscribe/",
                cast.carol.email,
            )
        )
    journeys.append(
        DemoJourney("Staff admin: invoices, payments, audit log", "/admin/", cast.staff.email)
    )
    return journeys


def _open_invoice(customer: Organisation) -> Invoice | None:
    """The customer's oldest invoice with an amount still due."""
    for invoice in Invoice.objects.filter(customer=customer, kind=Invoice.Kind.INVOICE).order_by(
        "issued_on", "pk"
    ):
        if not invoice.is_settled:
            return invoice
    return None
