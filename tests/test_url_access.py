"""Deny by default: every URL of the project, walked with every role.

ACCESS names, for every URL pattern, what each role gets. A URL added to the
project without an entry here fails `test_every_url_has_an_access_entry`, so
nobody can add a door without saying who may use it. The admin site guards
every page it generates with the same check (`admin_view`), so its generated
pages share one entry, ``admin:*``; its login and logout pages are listed
on their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import User
from billing.agreements import agreement_accept, agreement_current
from billing.invoicing import Line, invoice_issue
from billing.models import Invoice
from escrow.links import certificate_link, evidence_link, vendor_claim_link
from escrow.models import Backup, BackupDrill, DataExport, Deposit, NotaryRecipient
from escrow.services.claims import claim_file, claim_notify_vendor
from escrow.services.deposits import deposit_seal, deposit_store, deposit_verify
from escrow.services.evidence import Upload
from escrow.services.people import invitation_send
from escrow.services.seal_changes import seal_change_propose
from escrow.services.tokens import token_create
from records.links import stored_file_link
from records.services.audit import audit_record
from records.services.files import stored_file_put
from tests.conftest import signed_in_client
from tests.factories import (
    LicenceFactory,
    ProductFactory,
    make_acknowledged_deposit,
    make_active_subscription,
    make_deposit,
    make_subscription,
)
from transparency.services import checkpoint_latest, witness_cosign, witness_key_add
from vault import sshsig
from verification.services import product_recipe_set, verification_open

ROLES = ["anonymous", "customer_a", "customer_b", "notary", "notary_password_only", "staff"]
LOGIN_PATHS = {"/portal/login/", "/notary/login/", "/admin/login/"}
PUBLIC = dict.fromkeys(ROLES, "ok")


def everyone(outcome: str) -> dict[str, str]:
    return dict.fromkeys(ROLES, outcome)


CUSTOMERS_ONLY = {
    "anonymous": "login",
    "customer_a": "ok",
    "customer_b": "ok",
    "notary": "forbidden",
    "notary_password_only": "forbidden",
    "staff": "forbidden",
}
NOT_FOR_CUSTOMERS_OR_STAFF = {
    "anonymous": "login",
    "customer_a": "forbidden",
    "customer_b": "forbidden",
    "staff": "forbidden",
}
STAFF_ONLY = everyone("login") | {"staff": "ok"}

ACCESS: dict[str, dict[str, str]] = {
    "home": everyone("redirect:/portal/"),
    "portal:login": PUBLIC,
    "portal:logout": everyone("login"),
    # Asking for a reset link, and the pages around it, need no account; the link in
    # the sample is not a valid reset token, so its page says so (status 200).
    "portal:password-reset": PUBLIC,
    "portal:password-reset-done": PUBLIC,
    "portal:password-reset-confirm": PUBLIC,
    "portal:password-reset-complete": PUBLIC,
    "portal:password-change": CUSTOMERS_ONLY,
    "portal:password-change-done": CUSTOMERS_ONLY,
    "portal:dashboard": CUSTOMERS_ONLY,
    "portal:account": CUSTOMERS_ONLY,
    # Every customer user sees their colleagues; only an organisation admin (both sample
    # customers are admins) invites, revokes and removes. The sample's removal is of
    # customer A's own account, refused with a message; B cannot reach A's people.
    # A non-admin's 403 is in tests/portal/test_colleagues.py.
    "portal:colleagues": CUSTOMERS_ONLY,
    "portal:colleague-remove": CUSTOMERS_ONLY
    | {"customer_a": "redirect:/portal/colleagues/", "customer_b": "not_found"},
    "portal:invitation-revoke": CUSTOMERS_ONLY
    | {"customer_a": "redirect:/portal/colleagues/", "customer_b": "not_found"},
    # The invitation link is itself the credential; the sample's token is garbled, so
    # its page says the link is not valid.
    "portal:invitation": PUBLIC,
    "portal:agreement": CUSTOMERS_ONLY,
    "portal:agreement-pdf": CUSTOMERS_ONLY,
    # Only organisation A licenses the sample product; B learns nothing about it.
    "portal:product": CUSTOMERS_ONLY | {"customer_b": "not_found"},
    "notary:login": PUBLIC,
    "notary:logout": everyone("login"),
    "notary:dashboard": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    "notary:verify": NOT_FOR_CUSTOMERS_OR_STAFF | {"notary": "ok", "notary_password_only": "ok"},
    # Enrolment is closed once a notary has a confirmed authenticator.
    "notary:enrol": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "redirect:/notary/verify/", "notary_password_only": "redirect:/notary/verify/"},
    # The deposit API takes only deposit tokens (tests/escrow/test_deposit_api.py):
    # no browser session, whatever its role, gets in.
    "api:deposit-upload": everyone("unauthorized"),
    "api:deposit-status": everyone("unauthorized"),
    # The product's build recipe, for its pipeline (tests/verification/test_recipe_api.py).
    "api:build-recipe": everyone("unauthorized"),
    "api-schema": PUBLIC,
    # The system's public signing key as an OpenSSH allowed_signers line.
    "api:allowed-signers": PUBLIC,
    # The transparency log, public: the checkpoint; the proofs answer 400 without their
    # query parameters (tests/transparency/test_log_api.py).
    "api:log-checkpoint": PUBLIC,
    "api:log-inclusion-proof": everyone("bad_request"),
    "api:log-consistency-proof": everyone("bad_request"),
    "notary:deposit": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    # The sample deposit is only stored, so acknowledging is refused with a message.
    "notary:acknowledge": NOT_FOR_CUSTOMERS_OR_STAFF
    | {
        "notary": "redirect:/notary/deposits/<id>/",
        "notary_password_only": "redirect:/notary/verify/",
    },
    # Staff, verified notaries and customers whose active subscription covers the
    # product get a fresh expiring link.
    "certificate": {
        "anonymous": "login",
        "customer_a": "redirect:/files/certificate/<token>/",
        "customer_b": "not_found",
        "notary": "redirect:/files/certificate/<token>/",
        "notary_password_only": "not_found",
        "staff": "redirect:/files/certificate/<token>/",
    },
    # The expiring link is itself the credential, like a presigned S3 URL.
    "certificate-download": PUBLIC,
    "file-download": PUBLIC,
    "portal:subscribe": CUSTOMERS_ONLY | {"customer_b": "not_found"},
    # GET shows what cancelling does; only a POST that ticks the confirmation cancels.
    "portal:cancel-subscription": CUSTOMERS_ONLY | {"customer_b": "not_found"},
    "portal:invoices": CUSTOMERS_ONLY,
    "portal:invoice-pdf": CUSTOMERS_ONLY
    | {"customer_a": "redirect:/files/<token>/", "customer_b": "not_found"},
    "portal:release-key": CUSTOMERS_ONLY,
    # Only an organisation with a passphrase release key has the file; the sample has none.
    "portal:release-key-file": CUSTOMERS_ONLY
    | {"customer_a": "not_found", "customer_b": "not_found"},
    "portal:exports": CUSTOMERS_ONLY,
    "portal:export-download": CUSTOMERS_ONLY
    | {"customer_a": "redirect:/files/<token>/", "customer_b": "not_found"},
    # Each organisation's own list (tests/portal/test_notifications_page.py).
    "portal:notifications": CUSTOMERS_ONLY,
    "portal:claims": CUSTOMERS_ONLY,
    "portal:claim": CUSTOMERS_ONLY | {"customer_b": "not_found"},
    "portal:claim-add-evidence": CUSTOMERS_ONLY
    | {"customer_a": "redirect:/portal/claims/<id>/", "customer_b": "not_found"},
    "portal:claim-evidence": CUSTOMERS_ONLY
    | {"customer_a": "redirect:/files/evidence/<token>/", "customer_b": "not_found"},
    "portal:claim-withdraw": CUSTOMERS_ONLY
    | {"customer_a": "redirect:/portal/claims/<id>/", "customer_b": "not_found"},
    # The sample claim is not released, so there is nothing to download yet even for
    # its claimant (tests/escrow/test_release_journey.py downloads a real release).
    "portal:claim-download": CUSTOMERS_ONLY
    | {"customer_a": "not_found", "customer_b": "not_found"},
    "portal:claim-letter": CUSTOMERS_ONLY | {"customer_a": "not_found", "customer_b": "not_found"},
    # Links are credentials: a valid evidence link works for whoever holds it; the
    # release link used here is forged, and refused for everyone.
    "evidence-download": PUBLIC,
    "release-download": everyone("not_found"),
    "vendor-claim": PUBLIC,
    "vendor-evidence": everyone("redirect:/files/evidence/<token>/"),
    # The notary's lists (register of deposits, claims) with search and filters.
    "notary:deposits": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    "notary:claims": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    "notary:claim": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    # An empty decision is refused as a bad request.
    "notary:decide": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "bad_request", "notary_password_only": "redirect:/notary/verify/"},
    "notary:claim-evidence": NOT_FOR_CUSTOMERS_OR_STAFF
    | {
        "notary": "redirect:/files/evidence/<token>/",
        "notary_password_only": "redirect:/notary/verify/",
    },
    "notary:notifications": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    "notary:identity": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    "notary:witness": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    "notary:safe-export": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    "notary:seal-changes": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    # An empty decision is refused as a bad request.
    "notary:seal-change-decide": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "bad_request", "notary_password_only": "redirect:/notary/verify/"},
    "notary:colleagues": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "ok", "notary_password_only": "redirect:/notary/verify/"},
    # The sample user is not a colleague of the notary: nothing to recover.
    "notary:colleague-recover": NOT_FOR_CUSTOMERS_OR_STAFF
    | {"notary": "not_found", "notary_password_only": "redirect:/notary/verify/"},
    "admin:login": PUBLIC | {"staff": "redirect:/admin/"},
    # Django sends anyone who is not staff from the admin's logout to its index.
    "admin:logout": everyone("redirect:/admin/") | {"staff": "ok"},
    # Deposits have no public page, so "view on site" has nothing to show even to staff.
    "admin:view_on_site": STAFF_ONLY | {"staff": "not_found"},
    # Called without the parameters the admin's own widgets send, it refuses.
    "admin:autocomplete": STAFF_ONLY | {"staff": "forbidden"},
    "admin:<catch-all>": STAFF_ONLY | {"staff": "not_found"},
    # Records that only services create, and the audit log, cannot be added or
    # deleted by hand, not even by staff.
    **dict.fromkeys(
        [
            "admin:escrow_deposit_add",
            "admin:escrow_deposit_delete",
            "admin:escrow_releaseclaim_add",
            "admin:escrow_releaseclaim_delete",
            "admin:records_auditentry_add",
            "admin:records_auditentry_delete",
            "admin:records_notification_add",
            "admin:records_notification_delete",
            "admin:billing_subscription_add",
            "admin:billing_subscription_delete",
            "admin:escrow_deposittoken_delete",
            "admin:escrow_backup_add",
            "admin:escrow_backup_delete",
            "admin:escrow_backupdrill_add",
            "admin:escrow_backupdrill_delete",
            "admin:billing_invoice_add",
            "admin:billing_invoice_delete",
            # Users are deactivated, never deleted (the audit log names them); seal keys
            # and their changes are never added or removed by hand (docs/security.md).
            "admin:accounts_user_delete",
            "admin:escrow_notaryrecipient_add",
            "admin:escrow_notaryrecipient_delete",
            "admin:escrow_sealrecipientchange_delete",
            # Agreement versions come from migrations, acceptances from subscribing and
            # invitations from the customer portal: staff read them only.
            "admin:billing_escrowagreement_add",
            "admin:billing_escrowagreement_delete",
            "admin:billing_agreementacceptance_add",
            "admin:billing_agreementacceptance_delete",
            "admin:accounts_invitation_add",
            "admin:accounts_invitation_delete",
            # The transparency log is append-only: staff read it, nobody edits it.
            "admin:transparency_logleaf_add",
            "admin:transparency_logleaf_delete",
            "admin:transparency_checkpoint_add",
            "admin:transparency_checkpoint_delete",
            "admin:transparency_witnesskey_add",
            "admin:transparency_witnesskey_delete",
            "admin:transparency_witnesssignature_add",
            "admin:transparency_witnesssignature_delete",
            # Build verifications are written by the system only (verification/admin.py).
            "admin:verification_buildverification_add",
            "admin:verification_buildverification_delete",
        ],
        STAFF_ONLY | {"staff": "forbidden"},
    ),
    # The invoice's PDF: a fresh expiring link to the stored document.
    "admin:billing_invoice_pdf": STAFF_ONLY | {"staff": "redirect:/files/<token>/"},
    "admin:*": STAFF_ONLY,
}
POST_ONLY = {
    "portal:logout",
    "notary:logout",
    "admin:logout",
    "notary:acknowledge",
    "portal:claim-add-evidence",
    "portal:claim-withdraw",
    "notary:decide",
    "notary:seal-change-decide",
    "notary:colleague-recover",
    "portal:colleague-remove",
    "portal:invitation-revoke",
}


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or "admin:<catch-all>" for the admin's unnamed last pattern
    pattern: URLPattern

    @property
    def entry(self) -> str:
        if self.name in ACCESS:
            return self.name
        if self.name.startswith("admin:"):
            return "admin:*"
        return self.name


def walk(resolver: URLResolver, namespace: str = "") -> Iterator[Route]:
    for item in resolver.url_patterns:
        if isinstance(item, URLResolver):
            inner = ":".join(part for part in (namespace, item.namespace or "") if part)
            yield from walk(item, inner)
        elif item.name:
            yield Route(f"{namespace}:{item.name}" if namespace else item.name, item)
        elif namespace == "admin":
            yield Route("admin:<catch-all>", item)
        else:
            raise AssertionError(f"unnamed URL pattern {item.pattern} outside the admin")


ROUTES = list(walk(get_resolver()))


def test_every_url_has_an_access_entry() -> None:
    missing = [route.name for route in ROUTES if route.entry not in ACCESS]
    assert not missing, f"URLs without an entry in ACCESS: {missing}"
    assert all(set(outcomes) == set(ROLES) for outcomes in ACCESS.values())


def admin_model_for(route_name: str) -> type[Any] | None:
    if route_name == "admin:auth_user_password_change":  # named so by Django's UserAdmin
        return get_user_model()
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if route_name.startswith(prefix):
            return model
    return None


def url_for(route: Route, sample: dict[str, Any]) -> str:
    if route.name == "admin:<catch-all>":
        return "/admin/no-such-page/"
    names = set(route.pattern.pattern.regex.groupindex)
    kwargs: dict[str, Any] = {}
    for name in names:
        if name == "object_id" and route.name == "admin:view_on_site":
            kwargs[name] = sample["deposit"].pk
        elif name in ("object_id", "pk", "id"):
            model = admin_model_for(route.name)
            assert model is not None, f"no admin model for {route.name}"
            instance = model._default_manager.order_by("pk").first()
            assert instance is not None, f"create a sample {model.__name__} for {route.name}"
            kwargs[name] = instance.pk
        elif name == "content_type_id":
            kwargs[name] = ContentType.objects.get_for_model(Deposit).pk
        elif name == "app_label":
            kwargs[name] = "escrow"
        elif name in ("slug", "product_slug"):
            kwargs[name] = sample["product"].slug
        elif name == "version":
            kwargs[name] = sample["deposit"].version
        elif name == "deposit_id":
            kwargs[name] = sample["deposit"].pk
        elif name == "licence_id":
            kwargs[name] = sample["licence"].pk
        elif name == "subscription_id":
            # Its own subscription: cancelling it must not change what the other URLs see.
            kwargs[name] = sample["subscription_to_cancel"].pk
        elif name == "number":
            kwargs[name] = sample["invoice"].number
        elif name == "export_id":
            kwargs[name] = sample["export"].pk
        elif name == "claim_id":
            kwargs[name] = sample["claim"].pk
        elif name == "change_id":
            kwargs[name] = sample["seal_change"].pk
        elif name == "user_id":
            kwargs[name] = sample["subscriber"].pk
        elif name == "invitation_id":
            kwargs[name] = sample["invitation"].pk
        elif name == "agreement_version":
            kwargs[name] = agreement_current().version
        elif name == "evidence_id":
            kwargs[name] = sample["evidence"].pk
        elif name == "token" and route.name == "evidence-download":
            kwargs[name] = sample["evidence_token"]
        elif name == "token" and route.name == "release-download":
            kwargs[name] = "forged-token"
        elif name == "token" and route.name.startswith("vendor-"):
            kwargs[name] = sample["vendor_token"]
        elif name == "uidb64":
            kwargs[name] = "forged"
        elif name == "token" and route.name == "certificate-download":
            kwargs[name] = sample["certificate_token"]
        elif name == "token":
            kwargs[name] = sample["file_token"]
        else:
            raise AssertionError(f"no sample value for <{name}> in {route.name}")
    return reverse(route.name, kwargs=kwargs)


def outcome_of(response: Any) -> str:
    if response.status_code == 200:
        return "ok"
    if response.status_code in (301, 302):
        path = urlsplit(response["Location"]).path
        if path in LOGIN_PATHS:
            return "login"
        path = re.sub(r"^/files/certificate/[^/]+/$", "/files/certificate/<token>/", path)
        path = re.sub(r"^/files/(evidence|release)/[^/]+/$", r"/files/\1/<token>/", path)
        path = re.sub(
            r"^/files/(?!evidence/|release/|certificate/)[^/]+/$", "/files/<token>/", path
        )
        return "redirect:" + re.sub(r"/\d+/", "/<id>/", path)
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
    }.get(response.status_code, str(response.status_code))


@pytest.fixture
def sample(product, licence, subscriber, other_customer, notary, staff) -> dict[str, Any]:
    """One object of every model the admin shows, so each change page has a target."""
    deposit = make_deposit(product=product)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    deposit_store(deposit=deposit)
    NotaryRecipient.objects.create(
        notary=notary,
        label="safe",
        public_key="age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    )
    subscription = make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary, version="2.0.0")
    claim = claim_file(
        product=product,
        filed_by=subscriber,
        condition="insolvency",
        statement="Bankrupt.",
        uploads=[Upload("ruling.pdf", b"%PDF-1.4\n")],
    )
    claim_notify_vendor(claim=claim)  # the vendor's link works from here to the deadline
    evidence = claim.evidence.get()
    seal_change = seal_change_propose(
        kind="add_break_glass_key",
        actor=staff,
        public_key="age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
        label="physical safe",
        reason="sample",
    )
    audit_record(action="test.sample")
    User.objects.filter(pk__in=[subscriber.pk, other_customer.pk]).update(
        is_organisation_admin=True
    )
    subscriber.refresh_from_db()
    other_customer.refresh_from_db()
    invitation = invitation_send(actor=subscriber, email="new.colleague@northwind.example")
    agreement_accept(
        agreement=agreement_current(),
        subscription=subscription,
        actor=subscriber,
        ip_address="192.0.2.1",
    )
    token_create(product=product, label="CI", actor=staff)
    link = certificate_link(deposit=deposit, user=staff)
    invoice = invoice_issue(
        customer=licence.customer,
        vendor=product.vendor,
        purpose=Invoice.Purpose.DATA_EXPORT,
        lines=[Line("Export", Decimal("1.00"))],
        currency="EUR",
        actor=None,
    )
    stored = stored_file_put(
        key="exports/sample.zip",
        source=b"PK",
        purpose="export",
        content_type="application/zip",
        filename="sample.zip",
    )
    export = DataExport.objects.create(
        organisation=licence.customer,
        requested_by=subscriber,
        state=DataExport.State.READY,
        stored_file=stored,
    )
    failed_backup = Backup.objects.create(
        created_at=timezone.now(), state=Backup.State.FAILED, problem="sample"
    )
    BackupDrill.objects.create(backup=failed_backup, ok=False, problem="sample")
    verification_open(
        deposit_id=deposit.pk, product_id=product.pk, lease_owner="h:1:abc", has_copy=False
    )
    product_recipe_set(
        product=product, text='[build]\ncommand = "make"\nartefacts = ["app"]\n', actor=staff
    )
    witness = Ed25519PrivateKey.generate()
    witness_key_add(notary=notary, public_key_line=sshsig.openssh_public_key(witness))
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    witness_cosign(
        notary=notary,
        checkpoint=checkpoint,
        signature=sshsig.sign(checkpoint.body.encode(), witness, sshsig.namespace("witness")),
    )
    other_licence = LicenceFactory(
        customer=licence.customer, product=ProductFactory(vendor=product.vendor)
    )
    return {
        "subscription_to_cancel": make_subscription(licence=other_licence, actor=subscriber),
        "claim": claim,
        "invitation": invitation,
        "seal_change": seal_change,
        "evidence": evidence,
        "evidence_token": evidence_link(evidence=evidence, viewer="test")
        .rstrip("/")
        .rsplit("/", 1)[1],
        "vendor_token": vendor_claim_link(claim=claim).rstrip("/").rsplit("/", 1)[1],
        "licence": licence,
        "subscription": subscription,
        "invoice": invoice,
        "export": export,
        "file_token": stored_file_link(stored=stored, user=staff).rstrip("/").rsplit("/", 1)[1],
        "product": product,
        "deposit": deposit,
        "certificate_token": link.rstrip("/").rsplit("/", 1)[1],
        "subscriber": subscriber,
        "other_customer": other_customer,
        "notary": notary,
        "staff": staff,
    }


def client_as(role: str, sample: dict[str, Any]) -> Client:
    users = {
        "anonymous": None,
        "customer_a": sample["subscriber"],
        "customer_b": sample["other_customer"],
        "notary": sample["notary"],
        "notary_password_only": sample["notary"],
        "staff": sample["staff"],
    }
    return signed_in_client(users[role], second_factor=role != "notary_password_only")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_the_table_says(role, sample) -> None:
    assert apps.is_installed("escrow")
    failures = []
    for route in ROUTES:
        client = client_as(role, sample)
        url = url_for(route, sample)
        send = client.post if route.entry in POST_ONLY else client.get
        got = outcome_of(send(url))
        expected = ACCESS[route.entry][role]
        if got != expected:
            failures.append(f"{route.name} {url}: expected {expected}, got {got}")
    assert not failures, "\n".join(failures)
