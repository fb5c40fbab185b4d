from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core import serializers
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from escrow.models import Deposit, DepositToken
from escrow.services.tokens import token_create, token_revoke
from records.models import AuditEntry
from tests import archives
from tests.factories import ProductFactory

URL = "/api/v1/products/ledger-pro/deposits/1.0.0"


def put(token: str | None, *, address: str = "127.0.0.1", **headers):
    body = archives.tar_gz()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return Client(REMOTE_ADDR=address).put(
        URL,
        data=body,
        content_type="application/octet-stream",
        HTTP_X_ARCHIVE_SHA256=archives.sha256(body),
        **auth,
        **headers,
    )


@pytest.fixture
def issued(product, staff, notary_identity):
    return token_create(product=product, label="CI", actor=staff)


def test_a_token_is_stored_only_as_a_hash(issued) -> None:
    secret_part = issued.secret.split("_", 2)[2]
    dumped = serializers.serialize("json", DepositToken.objects.all())
    assert secret_part not in dumped
    assert issued.secret.startswith(f"esc_{issued.token.prefix}_")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authentication credentials were not provided."),
        ("esc_nope", "The token is malformed."),
        ("esc_000000000000_wrong", "The token is not valid."),
    ],
)
def test_requests_without_a_valid_token_are_refused(issued, header, message) -> None:
    response = put(header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert message in response.json()["detail"]
    assert not Deposit.objects.exists()


def test_a_wrong_secret_for_a_real_token_id_is_refused(issued) -> None:
    forged = f"esc_{issued.token.prefix}_{'x' * 43}"
    assert put(forged).status_code == 401


def test_a_revoked_or_expired_token_is_refused(issued, staff) -> None:
    token_revoke(token=issued.token, actor=staff)
    assert put(issued.secret).json()["detail"] == "The token was revoked."
    other = token_create(product=issued.token.product, label="old", actor=staff, expires_in_days=1)
    DepositToken.objects.filter(pk=other.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = put(other.secret)
    assert response.status_code == 401
    assert response.json()["detail"] == "The token has expired."
    assert not Deposit.objects.exists()


def test_a_token_deposits_only_its_own_product(issued, staff, vendor) -> None:
    other_product = ProductFactory(vendor=vendor, slug="fleet-planner")
    other = token_create(product=other_product, label="fleet CI", actor=staff)
    response = put(other.secret)
    assert response.status_code == 403
    assert "fleet-planner, not ledger-pro" in response.json()["detail"]
    assert not Deposit.objects.exists()


def test_a_token_used_outside_its_networks_is_refused_and_audited(
    product, staff, notary_identity
) -> None:
    issued = token_create(
        product=product,
        label="CI",
        actor=staff,
        allowed_networks=["203.0.113.0/24", "2001:db8::/32"],
    )
    response = put(issued.secret, address="198.51.100.7")
    assert response.status_code == 403
    assert "198.51.100.7" in response.json()["detail"]
    entry = AuditEntry.objects.get(action="token.refused_network")
    assert "198.51.100.7" in entry.reason
    assert not Deposit.objects.exists()
    assert put(issued.secret, address="203.0.113.9").status_code == 202


def test_a_forwarded_for_header_is_ignored_unless_a_proxy_is_trusted(
    product, staff, settings, notary_identity
) -> None:
    issued = token_create(
        product=product, label="CI", actor=staff, allowed_networks=["203.0.113.0/24"]
    )
    spoofed = put(issued.secret, address="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert spoofed.status_code == 403
    settings.ESCROW_TRUSTED_PROXIES = 1
    # Behind one trusted proxy, the address it appended (the last one) counts.
    proxied = put(
        issued.secret, address="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9"
    )
    assert proxied.status_code == 202


def test_the_status_of_another_products_deposit_is_not_found(issued, staff, vendor) -> None:
    deposit_id = put(issued.secret).json()["id"]
    other = token_create(product=ProductFactory(vendor=vendor), label="x", actor=staff)
    response = Client().get(
        f"/api/v1/deposits/{deposit_id}", HTTP_AUTHORIZATION=f"Bearer {other.secret}"
    )
    assert response.status_code == 404


def test_the_command_creates_a_token_that_works(product, notary_identity) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "deposit_token",
        "create",
        "--product",
        "ledger-pro",
        "--allow",
        "127.0.0.0/8",
        "--expires-days",
        "30",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    assert "shown once" in err.getvalue()
    token = DepositToken.objects.get()
    assert token.allowed_networks == ["127.0.0.0/8"]
    assert token.expires_at is not None
    assert put(secret).status_code == 202


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--product", "no-such-product"], "No product with slug 'no-such-product'"),
        (["--product", "ledger-pro", "--allow", "10.0.0.1/8"], "is not a CIDR range"),
        (["--product", "ledger-pro", "--allow", "everywhere"], "is not a CIDR range"),
        (["--product", "ledger-pro", "--expires-days", "0"], "at least one day"),
    ],
)
def test_the_command_refuses_bad_input_by_name(product, arguments, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command(
            "deposit_token", "create", *arguments, stdout=io.StringIO(), stderr=io.StringIO()
        )
    assert not DepositToken.objects.exists()


def test_the_command_lists_and_revokes_without_showing_secrets(issued) -> None:
    out = io.StringIO()
    call_command("deposit_token", "list", stdout=out)
    assert issued.token.prefix in out.getvalue()
    assert issued.secret not in out.getvalue()
    call_command("deposit_token", "revoke", issued.token.prefix, stdout=io.StringIO())
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert put(issued.secret).status_code == 401


def test_staff_create_a_token_in_the_admin_and_see_it_once(product, staff) -> None:
    from tests.conftest import signed_in_client

    client = signed_in_client(staff)
    response = client.post(
        "/admin/escrow/deposittoken/add/",
        {
            "product": product.pk,
            "label": "GitLab",
            "allowed_networks": "192.0.2.0/24, 198.51.100.0/24",
            "expires_in_days": "",
        },
        follow=True,
    )
    token = DepositToken.objects.get()
    page = response.content.decode()
    assert f"esc_{token.prefix}_" in page  # shown once, in this response
    # ...and nowhere a browser or the session keeps it.
    assert not any(f"esc_{token.prefix}_" in c.value for c in response.cookies.values())
    assert not any(f"esc_{token.prefix}_" in c.value for c in client.cookies.values())
    session = client.session.load()
    assert f"esc_{token.prefix}_" not in repr(session)
    assert token.allowed_networks == ["192.0.2.0/24", "198.51.100.0/24"]
    assert AuditEntry.objects.filter(action="token.create", actor=staff).exists()
    bad = client.post(
        "/admin/escrow/deposittoken/add/",
        {"product": product.pk, "label": "x", "allowed_networks": "not-a-net"},
    )
    assert "is not a CIDR range" in bad.content.decode()
    assert DepositToken.objects.count() == 1
