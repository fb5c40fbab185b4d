"""The deposit manifest: what was deposited, described in JSON and signed.

The manifest names the product, version and build pipeline, the archive
(format, size, SHA-256), every member (path, kind, size, SHA-256, link
target) and a ``completeness`` summary that warns when a deposit lacks what
a rebuild needs (build files, dependency lock files, a README, a licence).

Signing: Ed25519 over ``canonical_json(manifest)``, which is the manifest as
UTF-8 JSON with keys sorted by code point and no whitespace. The signature
travels as standard base64 text.

Key formats (for settings variables or files):

- private key: PEM, PKCS#8, unencrypted (``-----BEGIN PRIVATE KEY-----``), as
  written by ``signing_key_pem`` or ``openssl genpkey -algorithm ed25519``;
  ``load_signing_key`` also takes the 32 raw seed bytes;
- public key: ``ed25519:<standard base64 of the 32 raw bytes>``, one line, as
  written by ``public_key_text`` and read by ``load_public_key``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vault.archive import ArchiveMember, ArchiveReport
from vault.manifest_completeness import completeness

__all__ = [
    "SCHEMA",
    "ManifestError",
    "ManifestSignatureError",
    "build_manifest",
    "canonical_json",
    "generate_signing_key",
    "load_public_key",
    "load_signing_key",
    "manifest_sha256",
    "public_key_text",
    "sign_manifest",
    "signing_key_pem",
    "verify_manifest",
]

SCHEMA = "escrow-manifest/1"
PUBLIC_KEY_PREFIX = "ed25519:"
MAX_NAME_LENGTH = 200
MAX_PIPELINE_ENTRIES = 32
MAX_PIPELINE_VALUE_LENGTH = 2000
# ASCII keys keep the canonical ordering identical to RFC 8785's UTF-16 ordering.
_PIPELINE_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ManifestError(ValueError):
    """The manifest cannot be built from the given values, or a key is unusable."""


class ManifestSignatureError(Exception):
    """A manifest signature does not verify."""


def build_manifest(
    *,
    product: str,
    version: str,
    pipeline: Mapping[str, str],
    report: ArchiveReport,
    created_at: datetime,
    sealed_for: list[str] | None = None,
) -> dict[str, Any]:
    """The JSON-ready manifest for an inspected archive. ``pipeline`` holds
    build metadata (``commit``, ``build_url``, ...): short lower-case keys,
    string values. ``sealed_for`` names the age recipients the deposit is sealed
    for, so that the signed manifest shows anyone who could open it. Raises
    ``ManifestError`` for values that do not fit."""
    if created_at.tzinfo is None:
        raise ManifestError("created_at must be timezone-aware.")
    return {
        "schema": SCHEMA,
        "product": _text(product, what="product", limit=MAX_NAME_LENGTH),
        "version": _text(version, what="version", limit=MAX_NAME_LENGTH),
        "created_at": created_at.astimezone(UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "pipeline": _pipeline(pipeline),
        "archive": {"format": report.format, "size": report.size, "sha256": report.sha256},
        "members": [_member(member) for member in report.members],
        "completeness": completeness(report),
        **({"sealed_for": sorted(sealed_for)} if sealed_for is not None else {}),
    }


def canonical_json(manifest: Mapping[str, Any]) -> bytes:
    """The exact bytes that are hashed and signed: UTF-8 JSON, keys sorted,
    no whitespace, no NaN or infinity."""
    return json.dumps(
        manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical bytes (what the notary's acknowledgement signs)."""
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


def sign_manifest(manifest: Mapping[str, Any], private_key: Ed25519PrivateKey) -> str:
    """Base64 Ed25519 signature over the canonical bytes."""
    return base64.b64encode(private_key.sign(canonical_json(manifest))).decode("ascii")


def verify_manifest(
    manifest: Mapping[str, Any], signature: str, public_key: Ed25519PublicKey
) -> None:
    """Return quietly if ``signature`` is the key's signature of this exact
    manifest; raise ``ManifestSignatureError`` saying why not otherwise."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestSignatureError("The manifest signature is not valid base64.") from None
    if len(raw) != 64:
        raise ManifestSignatureError(
            f"The manifest signature is {len(raw)} bytes; an Ed25519 signature is 64."
        )
    try:
        public_key.verify(raw, canonical_json(manifest))
    except InvalidSignature:
        raise ManifestSignatureError(
            "The manifest signature does not verify: the manifest has been changed since "
            f"it was signed, or it was not signed by {public_key_text(public_key)}."
        ) from None


def generate_signing_key() -> Ed25519PrivateKey:
    """A new random Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def load_signing_key(pem_or_raw: bytes) -> Ed25519PrivateKey:
    """Read a signing key: unencrypted PKCS#8 PEM, or the 32 raw seed bytes."""
    data = pem_or_raw.strip() if pem_or_raw.lstrip().startswith(b"-----") else pem_or_raw
    if data.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise ManifestError(f"The signing key PEM cannot be read: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ManifestError("The signing key is not an Ed25519 key.")
        return key
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    raise ManifestError(
        "The signing key must be an unencrypted PKCS#8 PEM (BEGIN PRIVATE KEY) or 32 raw bytes."
    )


def signing_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, the format ``load_signing_key`` reads."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as ``ed25519:<base64 of the 32 raw bytes>``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def load_public_key(text: str) -> Ed25519PublicKey:
    """Read a public key written by ``public_key_text``."""
    text = text.strip()
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ManifestError(f"A public key must start with {PUBLIC_KEY_PREFIX!r}.")
    try:
        raw = base64.b64decode(text.removeprefix(PUBLIC_KEY_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError("The public key is not valid base64.") from None
    if len(raw) != 32:
        raise ManifestError(f"The public key is {len(raw)} bytes; an Ed25519 key is 32.")
    return Ed25519PublicKey.from_public_bytes(raw)


def _text(value: object, *, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{what} must be a string, not {type(value).__name__}.")
    if not value.strip():
        raise ManifestError(f"{what} must not be empty.")
    if len(value) > limit:
        raise ManifestError(f"{what} is longer than {limit} characters.")
    if _CONTROL.search(value):
        raise ManifestError(f"{what} contains a control character.")
    return value


def _pipeline(pipeline: Mapping[str, str]) -> dict[str, str]:
    if len(pipeline) > MAX_PIPELINE_ENTRIES:
        raise ManifestError(f"pipeline has more than {MAX_PIPELINE_ENTRIES} entries.")
    checked: dict[str, str] = {}
    for key, value in pipeline.items():
        if not isinstance(key, str) or not _PIPELINE_KEY.match(key):
            raise ManifestError(
                f"pipeline key {key!r} must be lower-case ASCII letters, digits, '_', '.' "
                "or '-', starting with a letter, at most 64 characters."
            )
        checked[key] = _text(value, what=f"pipeline {key}", limit=MAX_PIPELINE_VALUE_LENGTH)
    return checked


def _member(member: ArchiveMember) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": member.path, "kind": member.kind, "size": member.size}
    if member.sha256 is not None:
        entry["sha256"] = member.sha256
    if member.target is not None:
        entry["target"] = member.target
    return entry
