"""The age v1 file encryption format (age-encryption.org/v1, C2SP), streaming.

Pure Python on top of ``cryptography``; no Django. Typical use::

    identity = X25519Identity.generate()
    with open("plain", "rb") as src, open("plain.age", "wb") as dst:
        encrypt(src, dst, [identity.recipient()])
    with open("plain.age", "rb") as src, open("plain.out", "wb") as dst:
        decrypt(src, dst, [identity])

Supported: X25519 and scrypt recipients, multiple recipients, ASCII armor,
and header re-wrapping that reuses the encrypted payload untouched.
"""

from __future__ import annotations

from .api import decrypt, encrypt, read_header, rewrap, rewrap_header
from .errors import (
    AgeError,
    ArmorError,
    HeaderError,
    HeaderMacError,
    KeyFormatError,
    NoIdentityMatchError,
    PayloadError,
)
from .header import Header, Stanza
from .recipients import (
    DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    DEFAULT_SCRYPT_WORK_FACTOR,
    Identity,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    parse_identity_file,
)

__all__ = [
    "DEFAULT_MAX_SCRYPT_WORK_FACTOR",
    "DEFAULT_SCRYPT_WORK_FACTOR",
    "AgeError",
    "ArmorError",
    "Header",
    "HeaderError",
    "HeaderMacError",
    "Identity",
    "KeyFormatError",
    "NoIdentityMatchError",
    "PayloadError",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "encrypt",
    "parse_identity_file",
    "read_header",
    "rewrap",
    "rewrap_header",
]
