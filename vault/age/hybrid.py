"""The hybrid post-quantum age recipient type ``mlkem768x25519`` (C2SP age spec).

An identity is a 32-byte seed, written ``AGE-SECRET-KEY-PQ-1...``; its recipient
is the 1216-byte MLKEM768-X25519 (X-Wing) public key, written ``age1pq1...``
(about 1,960 characters: Bech32 without BIP 173's 90-character limit, as the
age spec says). A stanza is HPKE base mode (RFC 9180) with KEM MLKEM768-X25519,
HKDF-SHA256 and ChaCha20-Poly1305, ``info = "age-encryption.org/mlkem768x25519"``
and an empty aad: ``-> mlkem768x25519 <base64 enc (1120 bytes)>`` with the
32-byte HPKE ciphertext as body.

``cryptography`` (50.x) ships exactly this KEM as ``hpke.KEM.MLKEM768_X25519``,
with the X-Wing combiner; it takes the two component keys, so the seed is
expanded here as the hpke-pq reference does: SHAKE256(seed, 96) gives the
64-byte ML-KEM-768 seed (d || z) followed by the X25519 secret. The CCTV
``hybrid*`` vectors (tests/vault/test_age_conformance.py) and the spec's example
key pair (tests/vault/test_age_hybrid.py) pin this down.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from . import bech32
from .errors import HeaderError, KeyFormatError
from .header import FILE_KEY_SIZE, Stanza, decode_base64, encode_base64

HYBRID_TYPE = "mlkem768x25519"
RECIPIENT_HRP = "age1pq"
IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"
_INFO = b"age-encryption.org/mlkem768x25519"
_SEED_SIZE = 32
_MLKEM_PUBLIC_SIZE = 1184
_MLKEM_CIPHERTEXT_SIZE = 1088
_X25519_SIZE = 32
#: The MLKEM768-X25519 public key: ML-KEM-768 encapsulation key || X25519 point.
PUBLIC_KEY_SIZE = _MLKEM_PUBLIC_SIZE + _X25519_SIZE
#: The encapsulated key ``enc``: ML-KEM-768 ciphertext || X25519 ephemeral point.
ENC_SIZE = _MLKEM_CIPHERTEXT_SIZE + _X25519_SIZE
_BODY_SIZE = FILE_KEY_SIZE + 16
_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


class HybridRecipient:
    """An MLKEM768-X25519 public key, written as ``age1pq1...``."""

    __slots__ = ("_hpke_key", "_public_key")

    #: Files for this recipient resist a future quantum computer; see
    #: api.check_post_quantum_not_mixed for the rule this flag feeds.
    post_quantum = True

    def __init__(self, public_key: bytes) -> None:
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise KeyFormatError(f"a hybrid post-quantum public key is {PUBLIC_KEY_SIZE} bytes")
        try:
            mlkem_key = mlkem.MLKEM768PublicKey.from_public_bytes(public_key[:_MLKEM_PUBLIC_SIZE])
            x25519_key = X25519PublicKey.from_public_bytes(public_key[_MLKEM_PUBLIC_SIZE:])
        except ValueError:
            # FIPS 203's modulus check: coefficients must be below q.
            raise KeyFormatError("the ML-KEM-768 part of the public key is invalid") from None
        self._public_key = bytes(public_key)
        self._hpke_key = hpke.MLKEM768X25519PublicKey(mlkem_key, x25519_key)

    @classmethod
    def from_string(cls, text: str) -> HybridRecipient:
        """Parse an ``age1pq1...`` recipient string (lowercase, as age writes it)."""
        text = text.strip()
        try:
            hrp, data = bech32.decode(text)
        except bech32.Bech32Error as error:
            raise KeyFormatError(f"malformed hybrid age recipient: {error}") from None
        if hrp != RECIPIENT_HRP or text.lower() != text:
            raise KeyFormatError("not a hybrid age recipient (expected lowercase age1pq1...)")
        if len(data) != PUBLIC_KEY_SIZE:
            raise KeyFormatError("hybrid age recipient has the wrong key length")
        return cls(data)

    def to_string(self) -> str:
        """Return the ``age1pq1...`` encoding."""
        return bech32.encode(RECIPIENT_HRP, self._public_key)

    @property
    def public_key(self) -> bytes:
        """The raw 1216-byte MLKEM768-X25519 public key."""
        return self._public_key

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Seal ``file_key`` with HPKE to this key; a fresh encapsulation every call."""
        sealed = _SUITE.encrypt(file_key, self._hpke_key, info=_INFO)
        enc, body = sealed[:ENC_SIZE], sealed[ENC_SIZE:]
        return [Stanza(args=(HYBRID_TYPE, encode_base64(enc)), body=body)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridRecipient) and other._public_key == self._public_key

    def __hash__(self) -> int:
        return hash(self._public_key)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"HybridRecipient({self.to_string()[:20]!r}...)"


def _expand_seed(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, X25519PrivateKey]:
    expanded = hashlib.shake_256(seed).digest(64 + _X25519_SIZE)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        X25519PrivateKey.from_private_bytes(expanded[64:]),
    )


class HybridIdentity:
    """An MLKEM768-X25519 secret seed, written as ``AGE-SECRET-KEY-PQ-1...``."""

    __slots__ = ("_hpke_key", "_public_key", "_seed", "_x25519")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != _SEED_SIZE:
            raise KeyFormatError(f"a hybrid post-quantum secret key is {_SEED_SIZE} bytes")
        self._seed = bytes(seed)
        mlkem_key, self._x25519 = _expand_seed(self._seed)
        self._hpke_key = hpke.MLKEM768X25519PrivateKey(mlkem_key, self._x25519)
        self._public_key = (
            mlkem_key.public_key().public_bytes_raw() + self._x25519.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls) -> HybridIdentity:
        """Create a new random identity."""
        return cls(os.urandom(_SEED_SIZE))

    @classmethod
    def from_string(cls, text: str) -> HybridIdentity:
        """Parse an ``AGE-SECRET-KEY-PQ-1...`` identity string (uppercase)."""
        text = text.strip()
        try:
            hrp, data = bech32.decode(text)
        except bech32.Bech32Error as error:
            raise KeyFormatError(f"malformed hybrid age identity: {error}") from None
        if hrp != IDENTITY_HRP.lower() or text.upper() != text:
            raise KeyFormatError(
                "not a hybrid age identity (expected uppercase AGE-SECRET-KEY-PQ-1...)"
            )
        if len(data) != _SEED_SIZE:
            raise KeyFormatError("hybrid age identity has the wrong key length")
        return cls(data)

    def to_string(self) -> str:
        """Return the ``AGE-SECRET-KEY-PQ-1...`` encoding (uppercase)."""
        return bech32.encode(IDENTITY_HRP, self._seed).upper()

    def recipient(self) -> HybridRecipient:
        """Return the matching public recipient."""
        return HybridRecipient(self._public_key)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key from the first ``mlkem768x25519`` stanza that opens."""
        for stanza in stanzas:
            if stanza.type != HYBRID_TYPE:
                continue
            if len(stanza.args) != 2:
                raise HeaderError("mlkem768x25519 stanza must have exactly two arguments")
            enc = decode_base64(stanza.args[1], what="mlkem768x25519 enc")
            if len(enc) != ENC_SIZE:
                raise HeaderError(f"mlkem768x25519 enc is not {ENC_SIZE} bytes")
            # Checked before any decryption attempt (partitioning-oracle attacks).
            if len(stanza.body) != _BODY_SIZE:
                raise HeaderError(f"mlkem768x25519 stanza body is not {_BODY_SIZE} bytes")
            self._refuse_low_order(enc[_MLKEM_CIPHERTEXT_SIZE:])
            try:
                file_key = _SUITE.decrypt(enc + stanza.body, self._hpke_key, info=_INFO)
            except InvalidTag:
                # A stanza for another key, or a corrupted one: not ours.
                continue
            return file_key
        return None

    def _refuse_low_order(self, share: bytes) -> None:
        # X-Wing itself does not check, but age's vectors (hybrid_low_order,
        # hybrid_identity) require a header failure for an all-zero X25519 secret,
        # as for the X25519 recipient type.
        try:
            shared = self._x25519.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:
            raise HeaderError("mlkem768x25519 X25519 share is a low-order point") from None
        if not any(shared):
            raise HeaderError("mlkem768x25519 X25519 share is a low-order point")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridIdentity) and hmac.compare_digest(other._seed, self._seed)

    def __hash__(self) -> int:
        return hash(self._public_key)

    def __repr__(self) -> str:
        # Never show the secret: logs and tracebacks must not leak it.
        return f"HybridIdentity(recipient={self.recipient().to_string()[:20]!r}...)"
