"""Checking a manifest and its signature, from a file or from a stored deposit."""

from __future__ import annotations

import json
from pathlib import Path

from escrow.models import Deposit, DepositCopy
from vault.keys import system_signing_key
from vault.manifest import (
    ManifestError,
    ManifestSignatureError,
    load_public_key,
    manifest_sha256,
    public_key_text,
    verify_manifest,
)
from vault.site_clients import all_sites
from vault.sites import SiteError

MAX_MANIFEST_BYTES = 512 * 1024**2


class ManifestCheckFailed(Exception):
    """The manifest is unreadable, altered, or not signed by the expected key."""


def _read(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestCheckFailed(f"{what} {path} is larger than any manifest could be")
        return path.read_bytes()
    except OSError as error:
        raise ManifestCheckFailed(f"cannot read {what} {path}: {error.strerror}") from error


def _from_site(deposit: Deposit, kind: str) -> bytes:
    site = all_sites()[0]
    try:
        with site.open(deposit.object_key(kind)) as stream:
            return stream.read(MAX_MANIFEST_BYTES + 1)
    except SiteError as error:
        raise ManifestCheckFailed(
            f"cannot read the {kind} of deposit #{deposit.pk}: {error}"
        ) from error


def manifest_check(
    *,
    manifest_path: str | None,
    signature_path: str | None,
    public_key: str | None,
    deposit_id: int | None,
) -> str:
    """Verify a manifest's signature; return a one-line report or raise ManifestCheckFailed."""
    deposit = None
    if deposit_id is not None:
        deposit = Deposit.objects.filter(pk=deposit_id).first()
        if deposit is None or not deposit.copies.filter(kind=DepositCopy.Kind.MANIFEST).exists():
            raise ManifestCheckFailed(f"deposit #{deposit_id} has no stored manifest")
        raw, signature = _from_site(deposit, "manifest"), _from_site(deposit, "signature")
    elif manifest_path:
        path = Path(manifest_path)
        raw = _read(path, "manifest")
        signature = _read(
            Path(signature_path) if signature_path else path.with_suffix(".sig"), "signature"
        )
    else:
        raise ManifestCheckFailed("name a manifest file or --deposit ID")
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestCheckFailed(f"the manifest is not JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise ManifestCheckFailed("the manifest is not a JSON object")
    try:
        key = load_public_key(public_key) if public_key else system_signing_key().public_key()
        verify_manifest(manifest, signature.decode("ascii", "replace").strip(), key)
    except (ManifestError, ManifestSignatureError) as error:
        raise ManifestCheckFailed(str(error)) from error
    digest = manifest_sha256(manifest)
    if deposit is not None and digest != deposit.manifest_sha256:
        raise ManifestCheckFailed(
            f"the stored manifest's SHA-256 {digest} differs from the recorded "
            f"{deposit.manifest_sha256}"
        )
    signer = public_key or public_key_text(system_signing_key())
    return (
        f"manifest OK: {manifest.get('product')} {manifest.get('version')}, "
        f"{len(manifest.get('members', []))} members, sha256 {digest}, signed by {signer}"
    )
