"""Native age recipient types: X25519 public keys and scrypt passphrases."""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from . import bech32
from .errors import HeaderError, KeyFormatError
from .header import FILE_KEY_SIZE, Stanza, decode_base64, encode_base64
from .hybrid import IDENTITY_HRP as _HYBRID_IDENTITY_HRP
from .hybrid import RECIPIENT_HRP as _HYBRID_RECIPIENT_HRP
from .hybrid import HybridIdentity, HybridRecipient

_ZERO_NONCE = bytes(12)
_WRAPPED_KEY_SIZE = FILE_KEY_SIZE + 16
_X25519_TYPE = "X25519"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_RECIPIENT_HRP = "age"
_IDENTITY_HRP = "AGE-SECRET-KEY-"
_SCRYPT_TYPE = "scrypt"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_SCRYPT_SALT_SIZE = 16
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")
#: age's default scrypt work factor for encryption (about one second).
DEFAULT_SCRYPT_WORK_FACTOR = 18
#: Highest scrypt work factor accepted on decryption unless the caller raises it.
DEFAULT_MAX_SCRYPT_WORK_FACTOR = 22
_MAX_SCRYPT_WORK_FACTOR_LIMIT = 30


@runtime_checkable
class Recipient(Protocol):
    """Something a file can be encrypted to: wraps a file key into stanzas."""

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Return the stanzas that carry ``file_key`` for this recipient."""
        ...


@runtime_checkable
class Identity(Protocol):
    """Something that can decrypt a file: unwraps the file key from stanzas."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key, or None if no stanza is addressed to this identity.

        Raises :class:`HeaderError` for a malformed stanza of its own type.
        """
        ...


def _aead_wrap(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def _aead_unwrap(key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _x25519_wrap_key(shared_secret: bytes, share: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=share + recipient, info=_X25519_INFO)
    return hkdf.derive(shared_secret)


def _check_body_size(stanza: Stanza) -> None:
    # Checked before any decryption attempt, as the spec requires, to avoid
    # partitioning-oracle attacks with oversized ciphertexts.
    if len(stanza.body) != _WRAPPED_KEY_SIZE:
        raise HeaderError(f"{stanza.type} stanza body is not {_WRAPPED_KEY_SIZE} bytes")


def check_scrypt_alone(stanzas: Sequence[Stanza]) -> None:
    """Reject headers that mix an scrypt stanza with any other stanza (spec MUST)."""
    if len(stanzas) > 1 and any(stanza.type == _SCRYPT_TYPE for stanza in stanzas):
        raise HeaderError("an scrypt stanza must be the only stanza in the header")


class X25519Recipient:
    """An X25519 public key, written as ``age1...``."""

    __slots__ = ("_public_key",)

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise KeyFormatError("an X25519 public key is 32 bytes")
        self._public_key = bytes(public_key)

    @classmethod
    def from_string(cls, text: str) -> X25519Recipient:
        """Parse an ``age1...`` recipient string."""
        try:
            hrp, data = bech32.decode(text.strip())
        except bech32.Bech32Error as error:
            raise KeyFormatError(f"malformed age recipient: {error}") from None
        if hrp != _RECIPIENT_HRP or text.strip().upper() == text.strip():
            raise KeyFormatError("not an X25519 age recipient (expected lowercase age1...)")
        if len(data) != 32:
            raise KeyFormatError("age recipient has the wrong key length")
        return cls(data)

    def to_string(self) -> str:
        """Return the ``age1...`` encoding."""
        return bech32.encode(_RECIPIENT_HRP, self._public_key)

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte X25519 public key."""
        return self._public_key

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Wrap ``file_key`` to this public key with a fresh ephemeral share."""
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared_secret = ephemeral.exchange(X25519PublicKey.from_public_bytes(self._public_key))
        wrap_key = _x25519_wrap_key(shared_secret, share, self._public_key)
        body = _aead_wrap(wrap_key, file_key)
        return [Stanza(args=(_X25519_TYPE, encode_base64(share)), body=body)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public_key == self._public_key

    def __hash__(self) -> int:
        return hash(self._public_key)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"X25519Recipient({self.to_string()!r})"


class X25519Identity:
    """An X25519 secret key, written as ``AGE-SECRET-KEY-1...``."""

    __slots__ = ("_private_key", "_public_key", "_secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise KeyFormatError("an X25519 secret key is 32 bytes")
        self._secret = bytes(secret)
        self._private_key = X25519PrivateKey.from_private_bytes(self._secret)
        self._public_key = self._private_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> X25519Identity:
        """Create a new random identity."""
        return cls(os.urandom(32))

    @classmethod
    def from_string(cls, text: str) -> X25519Identity:
        """Parse an ``AGE-SECRET-KEY-1...`` identity string."""
        text = text.strip()
        try:
            hrp, data = bech32.decode(text)
        except bech32.Bech32Error as error:
            raise KeyFormatError(f"malformed age identity: {error}") from None
        if hrp != _IDENTITY_HRP.lower() or text.upper() != text:
            raise KeyFormatError("not an X25519 age identity (expected AGE-SECRET-KEY-1...)")
        if len(data) != 32:
            raise KeyFormatError("age identity has the wrong key length")
        return cls(data)

    def to_string(self) -> str:
        """Return the ``AGE-SECRET-KEY-1...`` encoding (uppercase)."""
        return bech32.encode(_IDENTITY_HRP, self._secret).upper()

    def recipient(self) -> X25519Recipient:
        """Return the matching public recipient."""
        return X25519Recipient(self._public_key)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key from the first X25519 stanza addressed to this key."""
        for stanza in stanzas:
            if stanza.type != _X25519_TYPE:
                continue
            if len(stanza.args) != 2:
                raise HeaderError("X25519 stanza must have exactly two arguments")
            share = decode_base64(stanza.args[1], what="X25519 share")
            if len(share) != 32:
                raise HeaderError("X25519 share is not 32 bytes")
            _check_body_size(stanza)
            try:
                shared_secret = self._private_key.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                # cryptography refuses the all-zero result of a low-order share.
                raise HeaderError("X25519 share is a low-order point") from None
            if not any(shared_secret):
                raise HeaderError("X25519 share is a low-order point")
            wrap_key = _x25519_wrap_key(shared_secret, share, self._public_key)
            file_key = _aead_unwrap(wrap_key, stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Identity) and hmac.compare_digest(
            other._secret, self._secret
        )

    def __hash__(self) -> int:
        return hash(self._public_key)

    def __repr__(self) -> str:
        # Never show the secret: logs and tracebacks must not leak it.
        return f"X25519Identity(recipient={self.recipient().to_string()!r})"


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    data = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not data:
        raise ValueError("the passphrase must not be empty")
    return data


def _scrypt_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase)


class ScryptRecipient:
    """Encrypts to a passphrase. Must be the only recipient of a file."""

    __slots__ = ("_passphrase", "work_factor")

    def __init__(
        self, passphrase: str | bytes, *, work_factor: int = DEFAULT_SCRYPT_WORK_FACTOR
    ) -> None:
        if not 1 <= work_factor <= _MAX_SCRYPT_WORK_FACTOR_LIMIT:
            raise ValueError(f"scrypt work factor must be in 1..{_MAX_SCRYPT_WORK_FACTOR_LIMIT}")
        self._passphrase = _passphrase_bytes(passphrase)
        self.work_factor = work_factor

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Wrap ``file_key`` under a key derived from the passphrase and a fresh salt."""
        salt = os.urandom(_SCRYPT_SALT_SIZE)
        body = _aead_wrap(_scrypt_key(self._passphrase, salt, self.work_factor), file_key)
        args = (_SCRYPT_TYPE, encode_base64(salt), str(self.work_factor))
        return [Stanza(args=args, body=body)]

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self.work_factor})"


class ScryptIdentity:
    """Decrypts passphrase-encrypted files, refusing work factors above a maximum."""

    __slots__ = ("_passphrase", "max_work_factor")

    def __init__(
        self, passphrase: str | bytes, *, max_work_factor: int = DEFAULT_MAX_SCRYPT_WORK_FACTOR
    ) -> None:
        if not 1 <= max_work_factor <= _MAX_SCRYPT_WORK_FACTOR_LIMIT:
            raise ValueError(f"max work factor must be in 1..{_MAX_SCRYPT_WORK_FACTOR_LIMIT}")
        self._passphrase = _passphrase_bytes(passphrase)
        self.max_work_factor = max_work_factor

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key if the header's scrypt stanza opens with this passphrase."""
        check_scrypt_alone(stanzas)
        for stanza in stanzas:
            if stanza.type != _SCRYPT_TYPE:
                continue
            if len(stanza.args) != 3:
                raise HeaderError("scrypt stanza must have exactly three arguments")
            salt = decode_base64(stanza.args[1], what="scrypt salt")
            if len(salt) != _SCRYPT_SALT_SIZE:
                raise HeaderError("scrypt salt is not 16 bytes")
            if not _WORK_FACTOR.fullmatch(stanza.args[2]):
                raise HeaderError("scrypt work factor is not a plain decimal number")
            # Compare digit counts first so an absurdly long number is never converted.
            digits = stanza.args[2]
            if len(digits) > 2 or int(digits) > self.max_work_factor:
                raise HeaderError(
                    f"scrypt work factor {digits[:6]} exceeds the maximum {self.max_work_factor}"
                )
            _check_body_size(stanza)
            key = _scrypt_key(self._passphrase, salt, int(digits))
            file_key = _aead_unwrap(key, stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __repr__(self) -> str:
        return f"ScryptIdentity(max_work_factor={self.max_work_factor})"


#: A public key a file can be encrypted to, as a person gives it.
PublicRecipient = X25519Recipient | HybridRecipient
#: A secret key from an identity file.
SecretIdentity = X25519Identity | HybridIdentity


def parse_recipient(text: str) -> PublicRecipient:
    """Parse an ``age1...`` (X25519) or ``age1pq1...`` (hybrid post-quantum) recipient."""
    text = text.strip()
    if text.lower().startswith(_HYBRID_RECIPIENT_HRP + "1"):
        return HybridRecipient.from_string(text)
    return X25519Recipient.from_string(text)


def parse_identity(text: str) -> SecretIdentity:
    """Parse an ``AGE-SECRET-KEY-1...`` or ``AGE-SECRET-KEY-PQ-1...`` identity."""
    text = text.strip()
    if text.upper().startswith(_HYBRID_IDENTITY_HRP + "1"):
        return HybridIdentity.from_string(text)
    return X25519Identity.from_string(text)


def is_post_quantum(recipient: object) -> bool:
    """Whether files for ``recipient`` resist a future quantum computer."""
    return bool(getattr(recipient, "post_quantum", False))


#: How a key's kind is named to people (portal, admin, docs).
KIND_HYBRID = "hybrid post-quantum (ML-KEM-768 + X25519)"
KIND_X25519 = "X25519"


def recipient_kind(text: str) -> str:
    """The kind of a recipient string, for people: :data:`KIND_HYBRID` or :data:`KIND_X25519`.

    Only the prefix is looked at: call it on keys already validated."""
    if text.strip().lower().startswith(_HYBRID_RECIPIENT_HRP + "1"):
        return KIND_HYBRID
    return KIND_X25519


def parse_identity_file(text: str) -> list[SecretIdentity]:
    """Parse an identity file as written by ``age-keygen`` (or ``age-keygen -pq``).

    Blank lines and lines starting with ``#`` are ignored; every other line
    must be an ``AGE-SECRET-KEY-1...`` or ``AGE-SECRET-KEY-PQ-1...`` identity.
    Errors name the line number but never echo its content, which may be secret.
    """
    identities: list[SecretIdentity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(parse_identity(line))
        except KeyFormatError:
            raise KeyFormatError(
                f"identity file line {number} is not an age identity "
                "(AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1...)"
            ) from None
    if not identities:
        raise KeyFormatError("identity file contains no identities")
    return identities
