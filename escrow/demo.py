"""Demo data for the embedded default: one vendor, two customers, a notary, staff.

Idempotent: running it again finds what exists, creates what is missing,
sets the demo users' passwords to the ones given, and replaces the demo
pipeline token (its secret is only ever shown once)."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Organisation, Product, Role, User
from billing.models import LicenceAgreement, Subscription, SubscriptionState
from billing.payments import payment_record
from billing.services import (
    licence_create,
    subscription_subscribe,
)
from escrow.models import Deposit, DepositState, DepositToken, NotaryRecipient, ReleaseKey
from escrow.services.deposits import deposit_acknowledge
from escrow.services.intake import deposit_receive
from escrow.services.release_keys import release_key_set
from escrow.services.replication import deposit_replicate_copies
from escrow.services.tokens import IssuedToken, token_create, token_revoke
from vault.age import X25519Identity, parse_identity_file

DEMO_TOTP_DEVICE = "demo authenticator"
# What the demo creates, by name, so `manage.py check --deploy` can refuse it in
# production (escrow/checks.py): its users have printed passwords, its notary key's
# identity lies in a file under var/ and its authenticator's secret is printed.
DEMO_USER_EMAILS = (
    "staff@acme.example",
    "alice@northwind.example",
    "carol@contoso.example",
    "notary@notaris.example",
)
DEMO_ORGANISATIONS = {
    "Acme Software B.V.": "legal@acme.example",
    "Northwind Logistics B.V.": "it@northwind.example",
    "Contoso GmbH": "it@contoso.example",
}
DEMO_NOTARY_KEY_LABEL = "Demo identity file"


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
class DemoResult:
    logins: list[DemoLogin] = field(default_factory=list)
    identity_path: Path | None = None
    notary_recipient: str = ""
    totp_secret: str = ""
    staff_totp_secret: str = ""
    pipeline_token: str = ""
    release_key_path: Path | None = None
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
    """A small, complete source tree: README, licence, build file, lock file, code."""
    files = {
        f"{product.slug}-{version}/README.md": f"# {product.name} {version}\n\nBuild: make\n",
        f"{product.slug}-{version}/LICENSE": "Proprietary. Held in escrow for licensees.\n",
        f"{product.slug}-{version}/Makefile": "all:\n\tcc -O2 -o app src/main.c\n",
        f"{product.slug}-{version}/package-lock.json": '{"lockfileVersion": 3}\n',
        f"{product.slug}-{version}/src/main.c": f"int main(void) {{ return 0; }} /* {version} */\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_767_225_600, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _demo_deposit(token: DepositToken, version: str) -> Deposit:
    existing = (
        Deposit.objects.filter(product=token.product, version=version)
        .exclude(state=DepositState.REJECTED)
        .first()
    )
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


def _organisation(name: str, kind: str, country: str, email: str, vat: str = "") -> Organisation:
    organisation, _ = Organisation.objects.get_or_create(
        name=name,
        defaults={"kind": kind, "country": country, "contact_email": email, "vat_number": vat},
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


def _licence(customer: Organisation, product: Product, fee: str, staff: User) -> LicenceAgreement:
    existing = LicenceAgreement.objects.filter(customer=customer, product=product).first()
    if existing is not None:
        return existing
    return licence_create(
        customer=customer,
        product=product,
        annual_fee=Decimal(fee),
        currency="EUR",
        start_date=date(2026, 1, 1),
        actor=staff,
    )


def _identity_file(identity_path: Path, whose: str) -> X25519Identity:
    """Reuse the identity file from an earlier run, or generate one. The file is a
    private key: it goes to disk for the demo, never to the database."""
    if identity_path.exists():
        return parse_identity_file(identity_path.read_text())[0]
    identity = X25519Identity.generate()
    identity_path.parent.mkdir(parents=True, exist_ok=True)
    identity_path.touch(mode=0o600)
    identity_path.write_text(
        f"# Demo {whose} identity generated by `manage.py demo`.\n"
        f"# public key: {identity.recipient().to_string()}\n{identity.to_string()}\n"
    )
    return identity


def demo_load(*, password: str, identity_path: Path) -> DemoResult:
    """Create (or complete) the demo data set and return the logins to print.

    Long because it is a script: one straight walk through the journeys the demo
    shows (people, products, licences, subscriptions, deposits), each step
    idempotent, read top to bottom like the README that introduces it."""
    result = DemoResult(identity_path=identity_path)
    identity = _identity_file(identity_path, "notary")
    release_identity = _identity_file(
        identity_path.with_name("northwind-release-key.txt"), "Northwind release key"
    )
    with transaction.atomic():
        vendor = _organisation(
            "Acme Software B.V.", "vendor", "NL", "legal@acme.example", "NL001234567B01"
        )
        northwind = _organisation(
            "Northwind Logistics B.V.", "customer", "NL", "it@northwind.example"
        )
        contoso = _organisation(
            "Contoso GmbH", "customer", "DE", "it@contoso.example", "DE123456789"
        )
        ledger, _ = Product.objects.get_or_create(
            slug="ledger-pro",
            defaults={
                "vendor": vendor,
                "name": "Ledger Pro",
                "description": "Double-entry accounting for mid-size companies.",
            },
        )
        fleet, _ = Product.objects.get_or_create(
            slug="fleet-planner",
            defaults={
                "vendor": vendor,
                "name": "Fleet Planner",
                "description": "Route and vehicle planning.",
            },
        )
        staff = _user("staff@acme.example", "Sam Staff", Role.STAFF, password)
        alice = _user("alice@northwind.example", "Alice Jansen", Role.CUSTOMER, password, northwind)
        _user("carol@contoso.example", "Carol Weber", Role.CUSTOMER, password, contoso)
        notary = _user("notary@notaris.example", "Mr. N. Otaris", Role.NOTARY, password)

        ledger_licence = _licence(northwind, ledger, "12000.00", staff)
        _licence(northwind, fleet, "4999.99", staff)
        _licence(contoso, fleet, "8000.00", staff)
        if not Subscription.objects.filter(licence=ledger_licence).exists():
            # Subscribed in the portal, invoiced, and paid: as a customer would.
            subscription = subscription_subscribe(
                licence=ledger_licence, actor=alice, accept_terms=True
            )
            first_invoice = subscription.invoices.get()
            payment_record(
                invoice_number=first_invoice.number,
                amount=first_invoice.total,
                received_on=timezone.localdate(),
                actor=staff,
            )
        assert Subscription.objects.filter(
            licence=ledger_licence, state=SubscriptionState.ACTIVE
        ).exists()

        NotaryRecipient.objects.get_or_create(
            public_key=identity.recipient().to_string(),
            defaults={"notary": notary, "label": DEMO_NOTARY_KEY_LABEL},
        )
        device, _ = TOTPDevice.objects.get_or_create(
            user=notary, name=DEMO_TOTP_DEVICE, defaults={"confirmed": True}
        )
        staff_device, _ = TOTPDevice.objects.get_or_create(
            user=staff, name=DEMO_TOTP_DEVICE, defaults={"confirmed": True}
        )

    # Deposits go through the real pipeline (check, manifest, seal, store,
    # replicate), outside the transaction above: storage sites are slow I/O.
    token = _demo_token(ledger, staff)
    fleet_token = _demo_token(fleet, staff)
    for deposit_token, version in [(token, "1.0.0"), (token, "1.1.0"), (fleet_token, "2.3.1")]:
        deposit = _demo_deposit(deposit_token.token, version)
        if deposit.version == "1.0.0" and deposit.state == DepositState.REPLICATED:
            deposit_acknowledge(deposit=deposit, notary=notary)
        result.deposits.append(deposit)
    result.pipeline_token = token.secret
    if not ReleaseKey.objects.filter(organisation=northwind).exists():
        release_key_set(
            actor=alice,
            method=ReleaseKey.Method.RECIPIENT,
            recipient=release_identity.recipient().to_string(),
        )
    result.release_key_path = identity_path.with_name("northwind-release-key.txt")

    result.notary_recipient = identity.recipient().to_string()
    result.totp_secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    result.staff_totp_secret = base64.b32encode(staff_device.bin_key).decode().rstrip("=")
    result.logins = [
        DemoLogin(
            "Customer portal", "/portal/", alice.email, password, "Northwind: active subscription"
        ),
        DemoLogin(
            "Customer portal",
            "/portal/",
            "carol@contoso.example",
            password,
            "Contoso: no subscription",
        ),
        DemoLogin(
            "Notary portal",
            "/notary/",
            notary.email,
            password,
            "then the TOTP code: `python manage.py demo_totp`",
        ),
        DemoLogin(
            "Staff admin",
            "/admin/",
            staff.email,
            password,
            "then the TOTP code: `python manage.py demo_totp --staff`",
        ),
    ]
    return result
