"""The system's keys: the Ed25519 signing key and the recipients a deposit is sealed to."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from vault.age import AgeError, SecretIdentity, X25519Identity, parse_identity_file
from vault.manifest import (
    ManifestError,
    generate_signing_key,
    load_signing_key,
    signing_key_pem,
)


class NoNotaryRecipient(Exception):
    """No active notary key: nothing can be sealed, so nothing is accepted."""


@functools.cache
def system_signing_key() -> Ed25519PrivateKey:
    """The key from ESCROW_SIGNING_KEY, or a local one generated once under var/."""
    configured = settings.ESCROW_SIGNING_KEY
    if configured:
        try:
            return load_signing_key(configured.encode())
        except ManifestError as error:
            raise ImproperlyConfigured(f"ESCROW_SIGNING_KEY: {error}") from error
    path = settings.ESCROW_SIGNING_KEY_PATH
    write_key_once(path, lambda: signing_key_pem(generate_signing_key()))
    return load_signing_key(path.read_bytes())


def write_key_once(path: Path, make: Callable[[], bytes]) -> None:
    """Write a locally generated key, readable by its owner only, unless it exists.
    O_EXCL: of two processes starting at once, only one writes; both then read it."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "wb") as file:
        file.write(make())


@functools.cache
def evidence_identity() -> SecretIdentity:
    """The system's age identity for claim evidence (ESCROW_EVIDENCE_IDENTITY), or one
    generated once under var/ for local use."""
    configured = settings.ESCROW_EVIDENCE_IDENTITY
    if configured:
        try:
            return parse_identity_file(configured)[0]
        except (AgeError, IndexError) as error:
            raise ImproperlyConfigured(f"ESCROW_EVIDENCE_IDENTITY: {error}") from error
    path = settings.ESCROW_EVIDENCE_IDENTITY_PATH
    write_key_once(path, new_identity_file)
    return parse_identity_file(path.read_text())[0]


def new_identity_file() -> bytes:
    return (X25519Identity.generate().to_string() + "\n").encode()
