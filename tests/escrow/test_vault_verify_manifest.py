from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.deposits import deposit_through_pipeline
from vault.manifest import generate_signing_key, public_key_text


@pytest.fixture
def stored(product, staff, notary_identity, settings):
    deposit = deposit_through_pipeline(product=product, staff=staff)
    primary = Path(settings.ESCROW_SITES[0]["path"])
    return deposit, primary / deposit.object_key("manifest")


def verify(*arguments: str) -> str:
    out = io.StringIO()
    call_command("vault", "verify-manifest", *arguments, stdout=out)
    return out.getvalue()


def test_a_stored_deposit_manifest_verifies(stored, capsys) -> None:
    deposit, _ = stored
    verify("--deposit", str(deposit.pk))
    output = capsys.readouterr().out
    assert f"manifest OK: ledger-pro 1.0.0, 5 members, sha256 {deposit.manifest_sha256}" in output


def test_a_manifest_file_verifies_with_its_signature_beside_it(stored, capsys) -> None:
    _, manifest = stored
    verify(str(manifest))
    assert "manifest OK" in capsys.readouterr().out


def test_an_altered_manifest_fails(stored, tmp_path) -> None:
    _, manifest = stored
    altered = tmp_path / "manifest.json"
    altered.write_bytes(manifest.read_bytes().replace(b'"1.0.0"', b'"1.0.1"'))
    (tmp_path / "manifest.sig").write_bytes(manifest.with_suffix(".sig").read_bytes())
    with pytest.raises(CommandError, match="does not verify"):
        verify(str(altered))


def test_another_signers_key_fails(stored) -> None:
    _, manifest = stored
    stranger = public_key_text(generate_signing_key())
    with pytest.raises(CommandError, match="does not verify"):
        verify(str(manifest), "--public-key", stranger)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not json", "not JSON"), (b"[1, 2]", "not a JSON object"), (b"\xff\xfe", "not JSON")],
)
def test_garbage_is_refused_by_name(tmp_path, content, message, db) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    (tmp_path / "manifest.sig").write_text("AAAA")
    with pytest.raises(CommandError, match=message):
        verify(str(path))


def test_a_missing_file_or_deposit_is_named(tmp_path, db) -> None:
    with pytest.raises(CommandError, match="cannot read manifest"):
        verify(str(tmp_path / "nope.json"))
    with pytest.raises(CommandError, match="deposit #999 has no stored manifest"):
        verify("--deposit", "999")


def test_prepare_sites_turns_on_versioning_in_every_s3_site(settings, s3_endpoint, capsys, db):
    from tests.s3server import new_bucket, s3_client, s3_site_config

    client = s3_client(s3_endpoint)
    names = [new_bucket(client) for _ in range(3)]
    settings.ESCROW_SITES = [
        s3_site_config(site, bucket, s3_endpoint)
        for site, bucket in zip(["primary", "replica"], names, strict=False)
    ]
    settings.ESCROW_BACKUP_SITE = s3_site_config("backup", names[2], s3_endpoint)
    call_command("vault", "prepare-sites")
    output = capsys.readouterr().out
    for site in ("primary", "replica", "backup"):
        assert f"{site} (s3): versioning on" in output
    for bucket in names:
        assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_prepare_sites_names_an_unreachable_site(settings, db):
    from tests.s3server import closed_endpoint_url, s3_site_config

    settings.ESCROW_SITES = [s3_site_config("primary", "vault-x", closed_endpoint_url())]
    with pytest.raises(CommandError):
        call_command("vault", "prepare-sites")
