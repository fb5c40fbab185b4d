"""factory_boy factories. Objects with a state machine are created through their
services, never by writing the state field, so tests see what production sees."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Any

import factory
from factory.django import DjangoModelFactory

from accounts.models import Organisation, Product, Role, User
from billing.models import LicenceAgreement, Subscription
from billing.services import subscription_request
from escrow.models import Deposit, NotaryRecipient, ReleaseClaim
from escrow.services.claims import claim_file
from escrow.services.deposits import deposit_register
from escrow.services.evidence import Upload
from vault.age import X25519Identity

PASSWORD = "correct horse battery staple"


class OrganisationFactory(DjangoModelFactory[Organisation]):
    class Meta:
        model = Organisation
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Customer {n} B.V.")
    kind = Organisation.Kind.CUSTOMER
    country = "NL"
    contact_email = factory.Sequence(lambda n: f"contact{n}@customer.example")


class VendorFactory(OrganisationFactory):
    name = "Acme Software B.V."
    kind = Organisation.Kind.VENDOR


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Sequence(lambda n: f"User {n}")
    role = Role.CUSTOMER
    organisation = factory.SubFactory(OrganisationFactory)

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        return User.objects.create_user(password=PASSWORD, **kwargs)


class ProductFactory(DjangoModelFactory[Product]):
    class Meta:
        model = Product

    vendor = factory.SubFactory(VendorFactory)
    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")


class LicenceFactory(DjangoModelFactory[LicenceAgreement]):
    class Meta:
        model = LicenceAgreement

    customer = factory.SubFactory(OrganisationFactory)
    product = factory.SubFactory(ProductFactory)
    annual_fee = Decimal("10000.00")
    currency = "EUR"
    start_date = date(2026, 1, 1)


def make_subscription(*, licence: LicenceAgreement, actor: User) -> Subscription:
    return subscription_request(licence=licence, actor=actor)


def make_deposit(*, product: Product, version: str = "1.0.0") -> Deposit:
    content = f"{product.slug}-{version}".encode()
    return deposit_register(
        product=product,
        version=version,
        archive_sha256=hashlib.sha256(content).hexdigest(),
        archive_size=len(content),
    )


EVIDENCE_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


def make_claim(
    *,
    product: Product,
    filed_by: User,
    condition: str = "insolvency",
    uploads: list[Upload] | None = None,
) -> ReleaseClaim:
    """A claim filed through the service, with one PDF of evidence (a claim needs some).
    Evidence is sealed for the notaries: with no notary key registered yet, a key is
    registered for the first notary (``notary_identity`` gives a test the identity)."""
    if not NotaryRecipient.objects.filter(is_active=True).exists():
        notary = User.objects.filter(role=Role.NOTARY).order_by("pk").first()
        if notary is not None:
            NotaryRecipient.objects.create(
                notary=notary,
                label="test key",
                public_key=X25519Identity.generate().recipient().to_string(),
            )
    return claim_file(
        product=product,
        filed_by=filed_by,
        condition=condition,
        statement="The vendor was declared bankrupt on 1 November.",
        uploads=uploads if uploads is not None else [Upload("ruling.pdf", EVIDENCE_PDF)],
    )


def make_acknowledged_deposit(*, product: Product, notary: User, version: str = "1.0.0") -> Deposit:
    """A deposit record walked to ``acknowledged`` through its services, with stand-in
    hashes (for tests that need the state, not the sealed file; tests/deposits.py has
    the real pipeline)."""
    from escrow.services.deposits import (
        deposit_acknowledge,
        deposit_replicate,
        deposit_seal,
        deposit_store,
        deposit_verify,
    )

    deposit = make_deposit(product=product, version=version)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    deposit_store(deposit=deposit)
    deposit_replicate(deposit=deposit)
    return deposit_acknowledge(deposit=deposit, notary=notary)


def make_active_subscription(
    *, licence: LicenceAgreement, actor: User, staff: User
) -> Subscription:
    from billing.services import subscription_activate, subscription_await_payment

    subscription = make_subscription(licence=licence, actor=actor)
    subscription_await_payment(subscription=subscription, actor=actor)
    return subscription_activate(subscription=subscription, actor=staff)
