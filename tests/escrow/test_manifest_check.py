"""Checking a deposit's signed manifest, from the primary site or from files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from escrow.services.manifests import ManifestCheckFailed, manifest_check
from tests.deposits import deposit_through_pipeline
from tests.factories import make_deposit
from vault.keys import system_signing_key
from vault.manifest import canonical_json, generate_signing_key, public_key_text, sign_manifest


@pytest.fixture
def stored(product, staff, notary_identity, settings):
    deposit = deposit_through_pipeline(product=product, staff=staff)
    primary = Path(settings.ESCROW_SITES[0]["path"])
    return deposit, primary / deposit.object_key("manifest")


def check(**arguments) -> str:
    values = {"manifest_path": None, "signature_path": None, "public_key": None, "deposit_id": None}
    return manifest_check(**(values | arguments))


def overwrite(path: Path, content: bytes) -> None:
    """Replace a file the local site made read-only, as an attacker with disk access could."""
    os.chmod(path, 0o644)
    path.write_bytes(content)


def test_a_stored_deposit_manifest_verifies(stored) -> None:
    deposit, _ = stored
    report = check(deposit_id=deposit.pk)
    assert report == (
        f"manifest OK: ledger-pro 1.0.0, 5 members, sha256 {deposit.manifest_sha256}, "
        f"signed by {public_key_text(system_signing_key())}"
    )


def test_a_manifest_file_verifies_with_the_named_key(stored, tmp_path) -> None:
    _, manifest = stored
    signature = tmp_path / "elsewhere.sig"
    signature.write_bytes(manifest.with_suffix(".sig").read_bytes())
    key = public_key_text(system_signing_key())
    report = check(manifest_path=str(manifest), signature_path=str(signature), public_key=key)
    assert report.startswith("manifest OK: ledger-pro 1.0.0, 5 members")
    assert report.endswith(f"signed by {key}")


def test_a_tampered_manifest_file_is_refused(stored, tmp_path) -> None:
    _, manifest = stored
    altered = tmp_path / "manifest.json"
    altered.write_bytes(manifest.read_bytes().replace(b'"1.0.0"', b'"1.0.1"'))
    (tmp_path / "manifest.sig").write_bytes(manifest.with_suffix(".sig").read_bytes())
    with pytest.raises(ManifestCheckFailed, match="The manifest signature does not verify"):
        check(manifest_path=str(altered))


def test_a_tampered_manifest_in_the_primary_site_is_refused(stored) -> None:
    deposit, manifest = stored
    overwrite(manifest, manifest.read_bytes().replace(b'"ledger-pro"', b'"ledger-max"'))
    with pytest.raises(ManifestCheckFailed, match="has been changed since it was signed"):
        check(deposit_id=deposit.pk)


def test_a_stored_manifest_swapped_and_re_signed_differs_from_the_recorded_hash(stored) -> None:
    """Even a valid signature does not vouch for a manifest other than the one recorded."""
    deposit, manifest = stored
    swapped = json.loads(manifest.read_bytes()) | {"version": "9.9.9"}
    overwrite(manifest, canonical_json(swapped))
    overwrite(manifest.with_suffix(".sig"), sign_manifest(swapped, system_signing_key()).encode())
    with pytest.raises(ManifestCheckFailed) as refused:
        check(deposit_id=deposit.pk)
    assert f"differs from the recorded {deposit.manifest_sha256}" in str(refused.value)


def test_another_signers_key_is_refused(stored) -> None:
    _, manifest = stored
    stranger = public_key_text(generate_signing_key())
    with pytest.raises(ManifestCheckFailed, match=re.escape(f"not signed by {stranger}.")):
        check(manifest_path=str(manifest), public_key=stranger)


def test_a_malformed_public_key_is_refused(stored) -> None:
    _, manifest = stored
    with pytest.raises(ManifestCheckFailed, match="A public key must start with"):
        check(manifest_path=str(manifest), public_key="ssh-ed25519 AAAA")


def test_a_deposit_without_a_stored_manifest_is_named(product) -> None:
    deposit = make_deposit(product=product)
    with pytest.raises(ManifestCheckFailed, match=f"deposit #{deposit.pk} has no stored manifest"):
        check(deposit_id=deposit.pk)
    with pytest.raises(ManifestCheckFailed, match="deposit #999999 has no stored manifest"):
        check(deposit_id=999999)


def test_a_manifest_missing_from_the_primary_site_is_named(stored) -> None:
    deposit, manifest = stored
    manifest.unlink()
    with pytest.raises(
        ManifestCheckFailed, match=f"cannot read the manifest of deposit #{deposit.pk}"
    ):
        check(deposit_id=deposit.pk)


def test_a_missing_signature_file_is_named(stored, tmp_path) -> None:
    _, manifest = stored
    lonely = tmp_path / "manifest.json"
    lonely.write_bytes(manifest.read_bytes())
    with pytest.raises(
        ManifestCheckFailed, match=r"cannot read signature .*/manifest\.sig: No such file"
    ):
        check(manifest_path=str(lonely))


def test_nothing_named_is_refused(db) -> None:
    with pytest.raises(ManifestCheckFailed, match="name a manifest file or --deposit ID"):
        check()
