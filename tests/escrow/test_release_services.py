"""The pieces of a release around the approval: which deposit is released, the notary's
identity (pasted or stored), the released file, the one-time passphrase and the letter."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from pypdf import PdfReader

from escrow.certificates import certificate_pdf_render
from escrow.models import ClaimRelease, ReleaseClaim
from escrow.services.claims import claim_mark_uncontested, claim_notify_vendor, claim_start_review
from escrow.services.deposits import deposit_acknowledge
from escrow.services.release_keys import release_key_set
from escrow.services.releases import (
    ApprovalRefused,
    deposit_to_release,
    notary_identity_store,
    notary_identity_unlock,
    parse_identities,
    release_approve,
    release_letter_render,
    released_file_chunks,
)
from records.models import StoredFile
from tests import archives
from tests.deposits import deposit_through_pipeline
from tests.factories import (
    ProductFactory,
    make_acknowledged_deposit,
    make_active_subscription,
    make_claim,
    make_deposit,
)
from vault import age
from vault.sites import SiteError

REASONS = "The court ruling of 3 November proves the insolvency."
PASSPHRASE = "vault door seventeen"  # a notary's, and a customer's release passphrase


@pytest.fixture(autouse=True)
def fast_scrypt(settings) -> None:
    settings.ESCROW_IDENTITY_SCRYPT_WORK_FACTOR = 10


@pytest.fixture
def subscription(licence, subscriber, staff):
    return make_active_subscription(licence=licence, actor=subscriber, staff=staff)


@pytest.fixture
def escrowed(subscription, product, staff, notary, notary_identity):
    """A real deposit, sealed, stored, replicated and acknowledged."""
    deposit = deposit_through_pipeline(product=product, staff=staff)
    deposit_acknowledge(deposit=deposit, notary=notary)
    return deposit


@pytest.fixture
def claimant_identity(subscriber) -> age.X25519Identity:
    identity = age.X25519Identity.generate()
    release_key_set(
        actor=subscriber, method="recipient", recipient=identity.recipient().to_string()
    )
    return identity


def claim_under_review(product, subscriber) -> ReleaseClaim:
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim_mark_uncontested(claim=claim)
    claim_start_review(claim=claim, actor=None)
    claim.refresh_from_db()
    assert claim.state == "under_review"
    return claim


def approved(escrowed, subscriber, notary, notary_identity) -> ClaimRelease:
    claim = claim_under_review(escrowed.product, subscriber)
    return release_approve(
        claim=claim, notary=notary, reasons=REASONS, identities=[notary_identity]
    )


def decrypt(data: bytes, identity) -> bytes:
    plain = io.BytesIO()
    age.decrypt(io.BytesIO(data), plain, [identity])
    return plain.getvalue()


# --- deposit_to_release -----------------------------------------------------------


def test_the_most_recent_acknowledged_deposit_is_the_one_released(
    subscription, product, subscriber, notary
) -> None:
    first = make_acknowledged_deposit(product=product, notary=notary, version="1.0.0")
    claim = make_claim(product=product, filed_by=subscriber)
    assert deposit_to_release(claim) == first
    latest = make_acknowledged_deposit(product=product, notary=notary, version="1.1.0")
    make_deposit(product=product, version="2.0.0")  # received only: not releasable
    assert deposit_to_release(claim) == latest


def test_another_products_deposit_is_never_released(product, notary, vendor) -> None:
    make_acknowledged_deposit(product=product, notary=notary)
    other = ProductFactory(vendor=vendor, name="Payroll Lite", slug="payroll-lite")
    assert deposit_to_release(ReleaseClaim(product=other)) is None


# --- parse_identities and notary_identity_unlock ----------------------------------


def test_an_identity_file_yields_its_identities(notary_identity) -> None:
    other = age.X25519Identity.generate()
    text = f"# created: today\n{notary_identity.to_string()}\n\n{other.to_string()}\n"
    parsed = parse_identities(text)
    assert [identity.to_string() for identity in parsed] == [
        notary_identity.to_string(),
        other.to_string(),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "hello notary",
        "AGE-SECRET-KEY-1NOTAKEY",
        "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        "",
        "# only a comment\n",
    ],
)
def test_anything_but_an_identity_file_is_refused_without_repeating_it(text) -> None:
    with pytest.raises(ApprovalRefused) as refused:
        parse_identities(text)
    message = str(refused.value)
    assert message in {
        "That is not an age identity file (AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1... lines).",
        "The identity file holds no key.",
    }
    assert not text.strip() or text.strip() not in message


def test_a_stored_identity_unlocks_only_with_its_passphrase(notary, notary_identity) -> None:
    with pytest.raises(ApprovalRefused, match="You have no stored identity"):
        notary_identity_unlock(notary=notary, passphrase=PASSPHRASE)
    notary_identity_store(
        notary=notary, identity_text=notary_identity.to_string(), passphrase=PASSPHRASE
    )
    with pytest.raises(ApprovalRefused, match="That passphrase does not unlock"):
        notary_identity_unlock(notary=notary, passphrase="vault door eighteen")
    unlocked = notary_identity_unlock(notary=notary, passphrase=PASSPHRASE)
    assert [identity.to_string() for identity in unlocked] == [notary_identity.to_string()]


def test_an_unlocked_identity_approves_a_release(
    escrowed, subscriber, notary, notary_identity, claimant_identity
) -> None:
    notary_identity_store(
        notary=notary, identity_text=notary_identity.to_string(), passphrase=PASSPHRASE
    )
    identities = notary_identity_unlock(notary=notary, passphrase=PASSPHRASE)
    claim = claim_under_review(escrowed.product, subscriber)
    release = release_approve(claim=claim, notary=notary, reasons=REASONS, identities=identities)
    assert release.deposit == escrowed


# --- released_file_chunks ---------------------------------------------------------


def test_the_released_file_opens_with_the_claimants_key_in_the_age_tool(
    escrowed, subscriber, notary, notary_identity, claimant_identity, tmp_path
) -> None:
    release = approved(escrowed, subscriber, notary, notary_identity)
    released = b"".join(released_file_chunks(release))
    assert len(released) == release.released_size
    path = tmp_path / "released.age"
    path.write_bytes(released)
    key = tmp_path / "release-key.txt"
    key.write_text(claimant_identity.to_string() + "\n")
    opened = subprocess.run(
        ["age", "-d", "-i", str(key), str(path)], check=True, capture_output=True
    ).stdout
    assert opened == archives.tar_gz()
    # Only the claimant's key opens it: the notary's no longer does.
    with pytest.raises(age.NoIdentityMatchError):
        decrypt(released, notary_identity)


def test_small_chunks_give_the_same_released_file(
    escrowed, subscriber, notary, notary_identity, claimant_identity
) -> None:
    release = approved(escrowed, subscriber, notary, notary_identity)
    whole = b"".join(released_file_chunks(release))
    pieces = list(released_file_chunks(release, chunk_size=7))
    assert len(pieces) > 10
    assert b"".join(pieces) == whole
    assert decrypt(whole, claimant_identity) == archives.tar_gz()


def test_a_sealed_deposit_shorter_than_its_header_is_an_error(
    escrowed, subscriber, notary, notary_identity, claimant_identity
) -> None:
    release = approved(escrowed, subscriber, notary, notary_identity)
    release.payload_offset = escrowed.ciphertext_size + 1
    with pytest.raises(SiteError, match="the sealed deposit is shorter than its header"):
        b"".join(released_file_chunks(release))


# --- a passphrase release key -------------------------------------------------------


def test_a_passphrase_release_opens_with_the_key_only_the_passphrase_unlocks(
    escrowed, subscriber, notary, notary_identity
) -> None:
    key = release_key_set(actor=subscriber, method="passphrase", passphrase=PASSPHRASE)
    release = approved(escrowed, subscriber, notary, notary_identity)
    assert release.recipient == key.recipient
    unlock = age.ScryptIdentity(PASSPHRASE, max_work_factor=22)
    identity_text = decrypt(key.encrypted_identity.encode(), unlock)
    (identity,) = age.parse_identity_file(identity_text.decode())
    released = b"".join(released_file_chunks(release))
    assert decrypt(released, identity) == archives.tar_gz()
    with pytest.raises(age.AgeError):
        decrypt(key.encrypted_identity.encode(), age.ScryptIdentity("a wrong passphrase"))


# --- release_letter_render --------------------------------------------------------


def test_the_release_letter_is_rendered_and_stored_once(
    escrowed, subscriber, notary, notary_identity, claimant_identity
) -> None:
    release = approved(escrowed, subscriber, notary, notary_identity)
    letter = release_letter_render(release=release)
    assert letter.key == f"releases/{release.claim_id}/release-letter.pdf"
    assert letter.filename == "release-letter-ledger-pro-1.0.0.pdf"
    assert (letter.purpose, letter.content_type) == ("release", "application/pdf")
    release.refresh_from_db()
    assert release.letter_key == letter.key

    pdf = (Path(settings.ESCROW_SITES[0]["path"]) / letter.key).read_bytes()
    assert pdf.startswith(b"%PDF-")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    flat = " ".join(text.split())
    assert "own use only" in flat
    assert "Northwind Logistics B.V." in flat
    assert escrowed.archive_sha256[:16] in text.replace("\n", "")

    again = release_letter_render(release=release)
    assert again.pk == letter.pk
    assert StoredFile.objects.filter(key=letter.key).count() == 1


def test_names_that_end_in_a_full_stop_get_no_second_one(
    escrowed, subscriber, notary, notary_identity, claimant_identity
) -> None:
    vendor = escrowed.product.vendor
    vendor.name = "Acme Software B.V."
    vendor.save(update_fields=["name"])
    assert subscriber.organisation.name.endswith("B.V.")  # Northwind Logistics B.V.

    def words(pdf: bytes) -> str:
        return " ".join(
            " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split()
        )

    certificate = words(certificate_pdf_render(deposit=escrowed))
    assert "for Acme Software B.V. on " in certificate
    letter = release_letter_render(release=approved(escrowed, subscriber, notary, notary_identity))
    text = words((Path(settings.ESCROW_SITES[0]["path"]) / letter.key).read_bytes())
    assert "To: Northwind Logistics B.V." in text
    for document in (certificate, text):
        assert "B.V.." not in document
