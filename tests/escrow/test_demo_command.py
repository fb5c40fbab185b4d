from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys

import pytest
from django.core import serializers
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.models import Organisation, Product, User
from billing.models import Invoice, LicenceAgreement, Payment, Subscription
from escrow.models import (
    ClaimEvidence,
    Deposit,
    DepositToken,
    NotaryRecipient,
    ReleaseClaim,
    ReleaseKey,
)
from records.models import AuditEntry, Notification
from records.services.audit import audit_chain_verify
from vault.age import parse_identity_file

MODELS = [Organisation, User, Product, LicenceAgreement, Subscription, Deposit, NotaryRecipient]
# What the demo's history makes: a second run makes none of it again.
HISTORY = [Invoice, Payment, ReleaseClaim, ClaimEvidence, ReleaseKey, Notification]


@pytest.fixture(autouse=True)
def _development(settings) -> None:
    """`manage.py demo` runs only with DEBUG on (tests/escrow/test_demo_never_in_production.py)."""
    settings.DEBUG = True


def run_demo(tmp_path, password: str = "demo-password-1") -> str:
    out = io.StringIO()
    call_command("demo", password=password, identity_file=tmp_path / "notary.txt", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_creates_the_cast_and_prints_every_login(tmp_path) -> None:
    output = run_demo(tmp_path)
    assert Organisation.objects.filter(kind="vendor").count() == 1
    assert Organisation.objects.filter(kind="customer").count() == 5
    assert Product.objects.count() == 3
    subscriptions = {
        (s.licence.customer.name, s.licence.product.slug): s.state
        for s in Subscription.objects.select_related("licence__customer", "licence__product")
    }
    assert subscriptions == {
        ("Northwind Logistics B.V.", "ledger-pro"): "active",
        ("Fabrikam Retail N.V.", "ledger-pro"): "active",
        ("Fabrikam Retail N.V.", "payroll-classic"): "active",
        ("Tailspin Travel B.V.", "fleet-planner"): "lapsed",
        ("Woodgrove Bank AG", "ledger-pro"): "awaiting_payment",
    }
    # Contoso has a licence and no subscription: Carol subscribes in the portal.
    assert LicenceAgreement.objects.filter(customer__name="Contoso GmbH").count() == 1
    states = dict(Deposit.objects.values_list("version", "state"))
    assert states == {
        "1.0.0": "acknowledged",
        "1.1.0": "replicated",
        "2.3.1": "replicated",
        "3.2.0": "acknowledged",
    }
    for user in User.objects.all():
        assert user.email in output
        assert user.check_password("demo-password-1")
    assert {"customer", "notary", "staff"} <= set(User.objects.values_list("role", flat=True))
    assert str(tmp_path / "notary.txt") in output
    assert audit_chain_verify().intact


@pytest.mark.django_db
def test_demo_is_idempotent(tmp_path) -> None:
    first = run_demo(tmp_path)
    counts = {model: model.objects.count() for model in [*MODELS, *HISTORY]}
    claims = dict(ReleaseClaim.objects.values_list("pk", "state"))
    identity = (tmp_path / "notary.txt").read_text()
    output = run_demo(tmp_path, password="another-password")
    assert {model: model.objects.count() for model in [*MODELS, *HISTORY]} == counts
    assert dict(ReleaseClaim.objects.values_list("pk", "state")) == claims
    assert audit_chain_verify().intact
    assert (tmp_path / "notary.txt").read_text() == identity
    assert User.objects.get(email="alice@northwind.example").check_password("another-password")
    assert "another-password" in output
    # Each run prints a fresh pipeline token; the one printed before is revoked.
    old_token = re.search(r"(esc_\w+_\S+)", first).group(1)
    new_token = re.search(r"(esc_\w+_\S+)", output).group(1)
    assert old_token != new_token
    assert (
        DepositToken.objects.filter(revoked_at__isnull=True, product__slug="ledger-pro").count()
        == 1
    )


@pytest.mark.django_db
@pytest.mark.parametrize("file_name", ["notary.txt", "northwind-release-key.txt"])
def test_demo_private_keys_go_to_files_and_never_to_the_database(tmp_path, file_name) -> None:
    run_demo(tmp_path)
    path = tmp_path / file_name
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    identity = parse_identity_file(path.read_text())[0]
    secret = identity.to_string()
    public = identity.recipient().to_string()
    assert (
        NotaryRecipient.objects.filter(public_key=public).exists()
        or ReleaseKey.objects.filter(recipient=public).exists()
    )

    everything = serializers.serialize(
        "json", [obj for model in [*MODELS, AuditEntry] for obj in model.objects.all()]
    )
    assert secret not in everything
    assert secret.lower() not in everything.lower()
    with connection.cursor() as cursor:  # and not in any table the ORM does not model
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            assert secret not in repr(cursor.fetchall())


@pytest.mark.django_db
def test_a_demo_deposit_opens_with_the_age_tool_and_the_printed_identity(tmp_path) -> None:
    output = run_demo(tmp_path)
    command = re.search(r"age -d -i (\S+) (\S+) \| tar tz", output)
    assert command is not None, output
    opened = subprocess.run(
        ["age", "-d", "-i", command.group(1), command.group(2)], capture_output=True, check=True
    ).stdout
    deposit = Deposit.objects.get(version="1.0.0")
    assert hashlib.sha256(opened).hexdigest() == deposit.archive_sha256


@pytest.mark.django_db
def test_without_time_machine_the_demo_names_what_to_install_and_stores_nothing(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "time_machine", None)  # as if it were not installed
    with pytest.raises(CommandError, match=r"install requirements-dev\.lock"):
        run_demo(tmp_path)
    assert not User.objects.exists()
    assert not AuditEntry.objects.exists()
