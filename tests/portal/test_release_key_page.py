from __future__ import annotations

import pytest

from escrow.models import ReleaseKey
from records.models import AuditEntry
from tests.conftest import signed_in_client
from vault.age import X25519Identity


def save(client, **data):
    return client.post("/portal/release-key/", data, follow=True)


def test_a_customer_registers_its_age_recipient(subscriber) -> None:
    recipient = X25519Identity.generate().recipient().to_string()
    page = save(signed_in_client(subscriber), method="recipient", recipient=f"  {recipient} ")
    assert "Your release key is saved." in page.content.decode()
    key = ReleaseKey.objects.get(organisation=subscriber.organisation)
    assert (key.method, key.recipient, key.updated_by) == ("recipient", recipient, subscriber)
    assert AuditEntry.objects.filter(action="release_key.set", actor=subscriber).exists()


def test_a_customer_may_choose_a_passphrase_instead(subscriber, settings) -> None:
    settings.ESCROW_IDENTITY_SCRYPT_WORK_FACTOR = 10
    client = signed_in_client(subscriber)
    save(client, method="recipient", recipient=X25519Identity.generate().recipient().to_string())
    passphrase = "correct horse battery staple 42"
    save(client, method="passphrase", passphrase=passphrase, passphrase_again=passphrase)
    key = ReleaseKey.objects.get(organisation=subscriber.organisation)
    assert key.method == "passphrase" and key.recipient.startswith("age1")
    assert key.encrypted_identity.startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    assert passphrase not in key.encrypted_identity
    assert ReleaseKey.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"passphrase": "short", "passphrase_again": "short"}, "at least 12 characters"),
        ({"passphrase": "long enough one", "passphrase_again": "another one!!"}, "differ"),
    ],
)
def test_a_weak_or_mistyped_passphrase_is_refused(subscriber, fields, message) -> None:
    page = save(signed_in_client(subscriber), method="passphrase", **fields)
    assert message in page.content.decode()
    assert not ReleaseKey.objects.exists()


@pytest.mark.parametrize(
    ("recipient", "message"),
    [
        ("", "Give the age recipient"),
        ("age1notakey", "is not an age recipient"),
        ("ssh-ed25519 AAAAC3Nza", "is not an age recipient"),
        ("<script>alert(1)</script>", "is not an age recipient"),
    ],
)
def test_a_bad_recipient_is_refused_on_the_field(subscriber, recipient, message) -> None:
    page = save(signed_in_client(subscriber), method="recipient", recipient=recipient)
    assert message in page.content.decode()
    assert "<script>alert(1)</script>" not in page.content.decode()
    assert not ReleaseKey.objects.exists()


def test_a_pasted_private_key_is_refused_and_not_stored(subscriber) -> None:
    secret = X25519Identity.generate().to_string()
    page = save(signed_in_client(subscriber), method="recipient", recipient=secret)
    assert "That is a private key" in page.content.decode()
    assert secret[:20] not in page.content.decode()  # not even the start of it
    assert not ReleaseKey.objects.exists()
    assert not AuditEntry.objects.filter(details__icontains="AGE-SECRET").exists()


def test_an_unknown_method_is_refused(subscriber) -> None:
    page = save(signed_in_client(subscriber), method="carrier-pigeon")
    assert "Select a valid choice" in page.content.decode()
    assert not ReleaseKey.objects.exists()
