"""Deposit tokens: strict network allow-lists, and who a presented token lets in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from escrow.models import DepositToken
from escrow.services.tokens import (
    TokenRefused,
    normalise_networks,
    token_authenticate,
    token_create,
    token_revoke,
)
from records.models import AuditEntry

# --- normalise_networks -----------------------------------------------------------


def test_a_bare_address_becomes_a_single_address_range() -> None:
    assert normalise_networks(["203.0.113.5", " 10.0.0.0/8 ", "2001:db8::1"]) == [
        "203.0.113.5/32",
        "10.0.0.0/8",
        "2001:db8::1/128",
    ]


def test_nothing_listed_means_nothing_to_normalise() -> None:
    assert normalise_networks([]) == []


@pytest.mark.parametrize(
    "hostile",
    [
        "10.0.0.0/33",
        "not-a-net",
        "",
        "10.0.0.1/24",  # host bits set: probably a typo for 10.0.0.0/24 or 10.0.0.1/32
        "10.0.0.0/8; rm -rf /",
        "256.1.1.1",
        "0x0a000000",
    ],
)
def test_anything_but_a_strict_cidr_range_is_refused_naming_it(hostile) -> None:
    with pytest.raises(ValidationError) as refused:
        normalise_networks(["203.0.113.0/24", hostile])
    messages = refused.value.message_dict["allowed_networks"]
    assert len(messages) == 1
    assert messages[0].startswith(f"{hostile!r} is not a CIDR range: ")


# --- token_authenticate -----------------------------------------------------------


@pytest.fixture
def issued(product, staff):
    return token_create(product=product, label="CI", actor=staff)


def refusal(presented: str, address: str = "198.51.100.7") -> TokenRefused:
    with pytest.raises(TokenRefused) as refused:
        token_authenticate(presented=presented, client_address=address)
    return refused.value


def test_the_right_token_is_let_in_and_its_use_recorded(issued) -> None:
    assert issued.token.last_used_at is None
    token = token_authenticate(presented=issued.secret, client_address="198.51.100.7")
    assert token.pk == issued.token.pk
    assert token.product.slug == "ledger-pro"
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


@pytest.mark.parametrize(
    "presented", ["", "Bearer", "esc_only-two", "xyz_abcdef012345_secret", "ESC_a_b"]
)
def test_a_malformed_token_is_refused(presented, db) -> None:
    refused = refusal(presented)
    assert (str(refused), refused.status, refused.token) == ("The token is malformed.", 401, None)


def test_a_wrong_secret_or_unknown_prefix_is_refused_without_naming_the_token(issued) -> None:
    _, prefix, secret = issued.secret.split("_", 2)
    wrong = secret[:-1] + ("y" if secret.endswith("x") else "x")
    for presented in (f"esc_{prefix}_{wrong}", f"esc_000000000000_{secret}"):
        refused = refusal(presented)
        assert (str(refused), refused.status, refused.token) == (
            "The token is not valid.",
            401,
            None,
        )
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is None


def test_a_revoked_token_is_refused(issued, staff) -> None:
    token_revoke(token=issued.token, actor=staff, reason="leaked in a build log")
    refused = refusal(issued.secret)
    assert (str(refused), refused.status) == ("The token was revoked.", 401)
    assert refused.token is not None and refused.token.pk == issued.token.pk


def test_an_expired_token_is_refused(product, staff) -> None:
    issued = token_create(product=product, label="CI", actor=staff, expires_in_days=1)
    assert token_authenticate(presented=issued.secret, client_address="198.51.100.7")
    DepositToken.objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    refused = refusal(issued.secret)
    assert (str(refused), refused.status) == ("The token has expired.", 401)


def test_an_allow_listed_token_is_refused_elsewhere_with_an_audit_row(product, staff) -> None:
    issued = token_create(
        product=product, label="CI", actor=staff, allowed_networks=["203.0.113.0/24"]
    )
    assert token_authenticate(presented=issued.secret, client_address="203.0.113.200")
    before = AuditEntry.objects.count()

    refused = refusal(issued.secret, address="198.51.100.7")
    assert str(refused) == "This token may not be used from 198.51.100.7."
    assert refused.status == 403
    assert AuditEntry.objects.count() == before + 1
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None
    assert entry.action == "token.refused_network"
    assert entry.actor_label == f"token:{issued.token.prefix}"
    assert entry.reason == "request from 198.51.100.7 outside 203.0.113.0/24"


def test_an_unparseable_client_address_is_outside_every_allow_list(product, staff) -> None:
    issued = token_create(
        product=product, label="CI", actor=staff, allowed_networks=["203.0.113.0/24"]
    )
    refused = refusal(issued.secret, address="unknown")
    assert refused.status == 403
