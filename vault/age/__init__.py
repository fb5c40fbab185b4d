"""The age v1 file encryption format (age-encryption.org/v1, C2SP), streaming.

Pure Python on top of ``cryptography``; no Django. Typical use::

    identity = X25519Identity.generate()
    with open("plain", "rb") as src, open("plain.age", "wb") as dst:
        encrypt(src, dst, [identity.recipient()])
    with open("plain.age", "rb") as src, open("plain.out", "wb") as dst:
        decrypt(src, dst, [identity])

Supported: hybrid post-quantum (mlkem768x25519), X25519 and scrypt recipients,
multiple recipients, ASCII armor, and header re-wrapping that reuses the
encrypted payload untouched.
"""

from __future__ import annotations

from .api import (
    MixedPostQuantumRecipients,
    allow_mixed_post_quantum,
    check_post_quantum_not_mixed,
    decrypt,
    encrypt,
    read_header,
    rewrap,
    rewrap_header,
)
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
from .hybrid import HybridIdentity, HybridRecipient
from .recipients import (
    DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    DEFAULT_SCRYPT_WORK_FACTOR,
    KIND_HYBRID,
    KIND_X25519,
    Identity,
    PublicRecipient,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    SecretIdentity,
    X25519Identity,
    X25519Recipient,
    is_post_quantum,
    parse_identity,
    parse_identity_file,
    parse_recipient,
    recipient_kind,
)

__all__ = [
    "DEFAULT_MAX_SCRYPT_WORK_FACTOR",
    "DEFAULT_SCRYPT_WORK_FACTOR",
    "KIND_HYBRID",
    "KIND_X25519",
    "AgeError",
    "ArmorError",
    "Header",
    "HeaderError",
    "HeaderMacError",
    "HybridIdentity",
    "HybridRecipient",
    "Identity",
    "KeyFormatError",
    "MixedPostQuantumRecipients",
    "NoIdentityMatchError",
    "PayloadError",
    "PublicRecipient",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "SecretIdentity",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "allow_mixed_post_quantum",
    "check_post_quantum_not_mixed",
    "decrypt",
    "encrypt",
    "is_post_quantum",
    "parse_identity",
    "parse_identity_file",
    "parse_recipient",
    "read_header",
    "recipient_kind",
    "rewrap",
    "rewrap_header",
]
