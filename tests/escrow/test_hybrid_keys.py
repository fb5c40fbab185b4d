"""Hybrid post-quantum age keys (``age1pq1...``) wherever a person gives an age key.

A notary's key, the break-glass key and a customer's release key may be hybrid;
a deposit sealed to a hybrid notary key is released through the normal path;
the notary portal names each key's kind. Keys are real (vault.age), the deposit
goes through the real pipeline, and the released file is opened by our age.
"""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from escrow.models import NotaryRecipient, ReleaseKey, SealRecipientChange
from escrow.services.claims import claim_mark_uncontested, claim_notify_vendor, claim_start_review
from escrow.services.deposits import deposit_acknowledge
from escrow.services.recipients import evidence_recipients, seal_recipients
from escrow.services.release_keys import release_key_set
from escrow.services.releases import (
    notary_identity_store,
    notary_identity_unlock,
    parse_identities,
    release_approve,
    released_file_chunks,
)
from escrow.services.seal_changes import seal_change_approve, seal_change_propose
from escrow.validators import validate_age_recipient
from portal.forms import ReleaseKeyForm
from tests import archives
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import (
    EVIDENCE_PDF,
    UserFactory,
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
)
from tests.seal import approved_break_glass, fresh_code
from vault import age
from vault.site_clients import all_sites

PASSPHRASE = "vault door seventeen"
HYBRID_KIND = "hybrid post-quantum (ML-KEM-768 + X25519)"


@pytest.fixture(autouse=True)
def fast_scrypt(settings) -> None:
    settings.ESCROW_IDENTITY_SCRYPT_WORK_FACTOR = 10


@pytest.fixture
def hybrid_identity(notary) -> age.HybridIdentity:
    """The notary's hybrid key pair; its public half is the only active seal recipient."""
    identity = age.HybridIdentity.generate()
    key = NotaryRecipient(
        notary=notary, label="office safe", public_key=identity.recipient().to_string()
    )
    key.full_clean()
    key.save()
    return identity


def sealed_stanza_types(deposit) -> list[str]:
    with all_sites()[0].open(deposit.object_key("sealed")) as sealed:
        return [stanza.type for stanza in age.read_header(sealed).stanzas]


def under_review(product, subscriber):
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim_mark_uncontested(claim=claim)
    claim_start_review(claim=claim, actor=None)
    claim.refresh_from_db()
    return claim


def open_age(data: bytes, identity) -> bytes:
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(data), plain, [identity])
    return plain.getvalue()


# --- Keys people give -------------------------------------------------------------


def test_a_notary_key_can_be_hybrid(notary, staff) -> None:
    first = age.X25519Identity.generate().recipient().to_string()
    NotaryRecipient.objects.create(notary=notary, label="first", public_key=first)
    other = UserFactory(email="second@notaris.example", role="notary", organisation=None)
    public = age.HybridIdentity.generate().recipient().to_string()
    change = seal_change_propose(
        kind=SealRecipientChange.Kind.ADD_NOTARY_KEY,
        actor=staff,
        public_key=public,
        label="hardware safe",
        notary=other,
        reason="a post-quantum key for the new notary",
    )
    change = seal_change_approve(change=change, notary=notary, token=fresh_code(notary))
    assert change.recipient is not None
    assert change.recipient.public_key == public and len(public) == 1959


def test_the_break_glass_key_can_be_hybrid(notary, staff, hybrid_identity) -> None:
    public = age.HybridIdentity.generate().recipient().to_string()
    key = approved_break_glass(public_key=public, staff=staff, notary=notary)
    assert key.public_key == public
    assert [r.to_string() for r in seal_recipients()] == [
        hybrid_identity.recipient().to_string(),
        public,
    ]


def test_a_release_key_can_be_hybrid(subscriber) -> None:
    public = age.HybridIdentity.generate().recipient().to_string()
    form = ReleaseKeyForm(data={"method": "recipient", "recipient": public})
    assert form.is_valid(), form.errors
    key = release_key_set(actor=subscriber, method="recipient", recipient=public)
    assert ReleaseKey.objects.get(pk=key.pk).recipient == public


def test_a_broken_hybrid_key_is_refused_with_the_reason() -> None:
    public = age.HybridIdentity.generate().recipient().to_string()
    broken = public[:-1] + ("q" if public[-1] != "q" else "p")
    with pytest.raises(ValidationError, match="invalid checksum"):
        validate_age_recipient(broken)
    with pytest.raises(ValidationError, match="wrong key length"):
        validate_age_recipient(age.bech32.encode("age1pq", bytes(1000)))


def test_a_hybrid_secret_key_is_refused_without_echoing_it() -> None:
    secret = age.HybridIdentity.generate().to_string()
    with pytest.raises(ValidationError) as refused:
        validate_age_recipient(secret)
    assert refused.value.code == "private_key_given"
    assert secret[18:] not in str(refused.value)


# --- Sealing and releasing --------------------------------------------------------


def test_a_deposit_sealed_to_a_hybrid_notary_key_is_released_through_the_normal_path(
    licence, subscriber, staff, product, notary, hybrid_identity
) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    deposit = deposit_through_pipeline(product=product, staff=staff)
    assert sealed_stanza_types(deposit) == ["mlkem768x25519"]
    assert deposit.sealed_for == [hybrid_identity.recipient().to_string()]
    deposit_acknowledge(deposit=deposit, notary=notary)
    claimant = age.HybridIdentity.generate()
    release_key_set(
        actor=subscriber, method="recipient", recipient=claimant.recipient().to_string()
    )
    # The notary keeps the hybrid identity under a passphrase and unlocks it to approve.
    text = f"# public key: {hybrid_identity.recipient()}\n{hybrid_identity.to_string()}\n"
    assert parse_identities(text) == [hybrid_identity]
    notary_identity_store(notary=notary, identity_text=text, passphrase=PASSPHRASE)
    identities = notary_identity_unlock(notary=notary, passphrase=PASSPHRASE)
    release = release_approve(
        claim=under_review(product, subscriber),
        notary=notary,
        reasons="The court ruling of 3 November proves the insolvency.",
        identities=identities,
    )
    released = b"".join(released_file_chunks(release))
    assert open_age(released, claimant) == archives.tar_gz()
    with pytest.raises(age.NoIdentityMatchError):
        open_age(released, hybrid_identity)


def test_evidence_is_sealed_to_a_hybrid_notary_and_the_system_key_together(
    licence, subscriber, staff, product, notary, hybrid_identity
) -> None:
    # The system's evidence key is X25519: the mix is allowed knowingly (see
    # escrow.services.recipients), and the notary's hybrid key opens the evidence.
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)
    kinds = {age.is_post_quantum(r) for r in evidence_recipients()}
    assert kinds == {True, False}
    claim = make_claim(product=product, filed_by=subscriber)
    evidence = claim.evidence.get()
    with all_sites()[0].open(evidence.key) as sealed:
        data = sealed.read()
    assert open_age(data, hybrid_identity) == EVIDENCE_PDF


def test_a_mixed_seal_set_still_seals_deposits(
    licence, subscriber, staff, product, notary, hybrid_identity
) -> None:
    classic = age.X25519Identity.generate()
    approved_break_glass(public_key=classic.recipient().to_string(), staff=staff, notary=notary)
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    deposit = deposit_through_pipeline(product=product, staff=staff)
    assert sealed_stanza_types(deposit) == ["mlkem768x25519", "X25519"]


# --- The notary portal shows each key's kind ---------------------------------------


def test_the_seal_recipient_page_names_each_keys_kind(notary, staff, hybrid_identity) -> None:
    classic = age.X25519Identity.generate().recipient().to_string()
    approved_break_glass(public_key=classic, staff=staff, notary=notary)
    page = signed_in_client(notary).get(reverse("notary:seal-changes")).content.decode()
    public = hybrid_identity.recipient().to_string()
    assert f"({HYBRID_KIND})" in page and "(X25519)" in page
    # Long keys are shortened in the table but stay whole (copyable) in the page.
    assert public[:16] + "…" in page and public in page
    assert classic in page
    assert 'id="post-quantum-note"' in page


def test_the_note_is_gone_once_every_key_is_hybrid(notary, hybrid_identity) -> None:
    page = signed_in_client(notary).get(reverse("notary:seal-changes")).content.decode()
    assert f"({HYBRID_KIND})" in page
    assert 'id="post-quantum-note"' not in page


def test_the_stored_identity_page_names_its_kind(notary, hybrid_identity) -> None:
    notary_identity_store(
        notary=notary, identity_text=hybrid_identity.to_string(), passphrase=PASSPHRASE
    )
    page = signed_in_client(notary).get(reverse("notary:identity")).content.decode()
    assert f"({HYBRID_KIND})" in page
    assert hybrid_identity.recipient().to_string() in page
    assert hybrid_identity.to_string() not in page


def test_the_staff_admin_lists_each_seal_keys_kind_in_short(notary, staff, hybrid_identity) -> None:
    other = UserFactory(email="second@notaris.example", role="notary", organisation=None)
    classic = age.X25519Identity.generate().recipient().to_string()
    NotaryRecipient.objects.create(notary=other, label="drawer", public_key=classic)
    glass = age.HybridIdentity.generate().recipient().to_string()
    approved_break_glass(public_key=glass, staff=staff, notary=notary)
    client = signed_in_client(staff)
    keys = client.get(reverse("admin:escrow_notaryrecipient_changelist")).content.decode()
    changes = client.get(reverse("admin:escrow_sealrecipientchange_changelist")).content.decode()
    assert HYBRID_KIND in keys and ">X25519<" in keys and classic in keys
    assert HYBRID_KIND in changes
    for public in (hybrid_identity.recipient().to_string(), glass):
        assert public not in keys, "a hybrid key is listed in short"
        assert public[:16] + "…" + public[-24:] in keys
    assert glass not in changes and glass[:16] + "…" + glass[-24:] in changes
