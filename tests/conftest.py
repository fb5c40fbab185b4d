"""Personas and shared fixtures.

The personas: a vendor with a product, customer organisation A (which
licenses the product and subscribes) with its user ``subscriber``, customer
organisation B with its user ``other_customer`` (no licence for the product),
a ``notary`` with a confirmed TOTP authenticator, and ``staff``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Organisation, Product, Role, User
from billing.models import LicenceAgreement
from config.storage_sites import default_sites
from escrow.models import NotaryRecipient
from tests.factories import LicenceFactory, OrganisationFactory, ProductFactory, UserFactory
from vault.age import X25519Identity
from vault.keys import evidence_identity, system_signing_key

if TYPE_CHECKING:
    from tests.s3server import DeleteGuard

REQUIRE_SERVICES = os.environ.get("ESCROW_TEST_REQUIRE_SERVICES") == "1"

# moto in server mode, S3 helpers, and the guard that refuses every erasing S3 call.
pytest_plugins = ["tests.s3server"]


def skip_or_fail(reason: str) -> None:
    """Skip locally when a real service is absent; in CI (which sets
    ESCROW_TEST_REQUIRE_SERVICES=1) the same absence is a failure."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_settings(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ESCROW_SITES = default_sites(tmp_path / "vault")
    # The backup site holds the audit anchors the chain check compares with: never the
    # developer's own var/backups, whose anchors belong to another database's chain.
    settings.ESCROW_BACKUP_SITE = default_sites(tmp_path / "backups")[0] | {"name": "backup"}
    settings.ESCROW_BACKUP_IDENTITY_PATH = tmp_path / "var" / "backup_identity.txt"
    settings.VAR_DIR = tmp_path / "var"
    settings.ESCROW_INTAKE_DIR = tmp_path / "intake"
    # Build verification (a sandboxed build after every deposit) is off unless a test
    # turns it on (tests/verification/): the other tests' deposits are not builds.
    settings.ESCROW_VERIFY_ENABLED = False
    settings.ESCROW_SIGNING_KEY_PATH = tmp_path / "var" / "signing_key.pem"
    settings.ESCROW_EVIDENCE_IDENTITY_PATH = tmp_path / "var" / "evidence_identity.txt"
    system_signing_key.cache_clear()
    evidence_identity.cache_clear()
    yield
    system_signing_key.cache_clear()
    evidence_identity.cache_clear()


@pytest.fixture(autouse=True)
def _tasks_in_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tasks run in-process, as in the embedded default, even when CI points the
    settings at Redis: only tests marked ``services`` talk to a real worker. Celery
    reads its configuration once, so the app's own flag is switched, not the setting."""
    from config.celery import app

    if request.node.get_closest_marker("services"):
        yield
        return
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture(autouse=True)
def _no_erasing_s3_calls(vault_delete_guard: DeleteGuard) -> None:
    """Every test fails on any S3 call that could erase an object (see tests/s3server.py)."""


@pytest.fixture
def vendor(db: None) -> Organisation:
    return OrganisationFactory(name="Acme Software B.V.", kind=Organisation.Kind.VENDOR)


@pytest.fixture
def product(vendor: Organisation) -> Product:
    return ProductFactory(vendor=vendor, name="Ledger Pro", slug="ledger-pro")


@pytest.fixture
def organisation_a(db: None) -> Organisation:
    return OrganisationFactory(name="Northwind Logistics B.V.")


@pytest.fixture
def organisation_b(db: None) -> Organisation:
    return OrganisationFactory(name="Contoso GmbH", country="DE")


@pytest.fixture
def licence(organisation_a: Organisation, product: Product) -> LicenceAgreement:
    return LicenceFactory(customer=organisation_a, product=product)


@pytest.fixture
def subscriber(organisation_a: Organisation, licence: LicenceAgreement) -> User:
    return UserFactory(email="alice@northwind.example", organisation=organisation_a)


@pytest.fixture
def other_customer(organisation_b: Organisation) -> User:
    return UserFactory(email="carol@contoso.example", organisation=organisation_b)


@pytest.fixture
def notary(db: None) -> User:
    user = UserFactory(email="notary@notaris.example", role=Role.NOTARY, organisation=None)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user


@pytest.fixture
def notary_identity(notary: User) -> X25519Identity:
    """The notary's age key pair; its public half is the active seal recipient."""
    identity = X25519Identity.generate()
    NotaryRecipient.objects.create(
        notary=notary, label="office safe", public_key=identity.recipient().to_string()
    )
    return identity


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory(email="staff@acme.example", role=Role.STAFF, organisation=None)


def signed_in_client(user: User | None, *, second_factor: bool = True) -> Client:
    """A test client signed in as ``user``; notaries and staff also pass TOTP unless
    told not to."""
    client = Client()
    if user is None:
        return client
    client.force_login(user)
    if user.role in (Role.NOTARY, Role.STAFF) and second_factor:
        # Staff sign in to /admin/ with a second factor too (config/admin_site.py).
        device = TOTPDevice.objects.devices_for_user(user, confirmed=True).first()
        if device is None:
            assert user.role == Role.STAFF, "the notary fixture has a confirmed device"
            device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


@pytest.fixture
def client_for() -> Callable[..., Client]:
    return signed_in_client
