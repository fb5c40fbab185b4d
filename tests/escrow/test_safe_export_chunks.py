"""The notary's safe as a streamed ZIP: every acknowledged deposit's sealed file, manifest
and signatures, the log's proofs, a SHA256SUMS that checks them, and a README."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from escrow.services.deposits import deposit_acknowledge
from escrow.services.safe_export import safe_export_chunks
from records.models import AuditEntry
from tests import archives
from tests.deposits import deposit_through_pipeline
from vault import age
from vault.keys import system_signing_key
from vault.manifest import public_key_text

# The proof kit (docs/operations.md, "The safe export as a proof kit"); its own test is
# tests/escrow/test_safe_export_kit.py.
DEPOSIT_FILES = (
    "sealed.age",
    "manifest.json",
    "manifest.sig",
    "manifest.json.sig",
    "inclusion.json",
    "allowed_signers",
)
KIT_FILES = {
    "README.txt",
    "kit.json",
    "escrow_verify.py",
    "allowed_signers",
    "witnesses_allowed_signers",
}
LOG_FILES = {"log/checkpoint", "log/checkpoint.note", "log/checkpoint.sig"}


@pytest.fixture
def acknowledged(product, staff, notary, notary_identity):
    deposit = deposit_through_pipeline(product=product, staff=staff)
    deposit_acknowledge(deposit=deposit, notary=notary)
    return deposit


def exported(notary) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(safe_export_chunks(actor=notary))))


def sums(archive: zipfile.ZipFile) -> dict[str, str]:
    lines = archive.read("SHA256SUMS").decode().splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines if line)}


def test_the_safe_holds_each_acknowledged_deposit_and_sums_that_match(
    acknowledged, product, staff, notary, notary_identity
) -> None:
    zip_body = archives.zip_bytes()  # made once: a zip records the time it was written
    second = deposit_through_pipeline(product=product, staff=staff, version="1.1.0", body=zip_body)
    deposit_acknowledge(deposit=second, notary=notary)
    deposit_through_pipeline(product=product, staff=staff, version="2.0.0")  # not acknowledged

    archive = exported(notary)
    assert archive.testzip() is None
    members = set(archive.namelist())
    expected = (
        {f"ledger-pro/{version}/{name}" for version in ("1.0.0", "1.1.0") for name in DEPOSIT_FILES}
        | KIT_FILES
        | LOG_FILES
    )
    assert members == expected | {"SHA256SUMS"}

    listed = sums(archive)
    assert set(listed) == expected
    for name, digest in listed.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name

    for deposit, original in ((acknowledged, archives.tar_gz()), (second, zip_body)):
        folder = f"ledger-pro/{deposit.version}"
        assert listed[f"{folder}/sealed.age"] == deposit.ciphertext_sha256
        assert listed[f"{folder}/manifest.json"] == deposit.manifest_sha256
        opened = io.BytesIO()
        age.decrypt(io.BytesIO(archive.read(f"{folder}/sealed.age")), opened, [notary_identity])
        assert opened.getvalue() == original


def test_the_readme_says_how_to_check_and_open_and_lists_the_deposits(acknowledged, notary) -> None:
    readme = exported(notary).read("README.txt").decode()
    assert "sha256sum -c SHA256SUMS" in readme
    assert "age -d -i notary-identity.txt" in readme
    assert public_key_text(system_signing_key()) in readme
    assert f"Ledger Pro 1.0.0 (deposit {acknowledged.pk}), in ledger-pro/1.0.0/" in readme
    assert (
        f'echo "{acknowledged.archive_sha256}  ledger-pro-1.0.0.tar.gz" | sha256sum -c -' in readme
    )


def test_each_export_is_audited_with_the_number_of_deposits(acknowledged, notary) -> None:
    before = AuditEntry.objects.count()
    exported(notary)
    assert AuditEntry.objects.count() == before + 1
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None
    assert (entry.action, entry.actor_id, entry.details) == (
        "notary.safe_export",
        notary.pk,
        {"deposits": 1},
    )


def test_an_empty_safe_is_still_a_zip_with_a_readme(notary) -> None:
    archive = exported(notary)
    assert set(archive.namelist()) == KIT_FILES | {"SHA256SUMS"}
    assert set(sums(archive)) == KIT_FILES
    assert "(This export holds no acknowledged deposits.)" in archive.read("README.txt").decode()
