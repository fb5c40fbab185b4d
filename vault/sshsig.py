"""SSHSIG: signatures anyone can check with OpenSSH's ``ssh-keygen -Y verify``.

The format is OpenSSH's PROTOCOL.sshsig, written here for Ed25519 keys only (the
system key). The ``sshsig`` package on PyPI only verifies and no maintained package
signs, so both directions are here, on ``cryptography``'s Ed25519.

A signature is the armored base64 (70 columns, like ``ssh-keygen -Y sign``) of::

    byte[6]  "SSHSIG"
    uint32   1                   (version)
    string   publickey           (string "ssh-ed25519", string 32-byte key)
    string   namespace
    string   reserved            (empty)
    string   hash_algorithm      ("sha512"; "sha256" is accepted when verifying)
    string   signature           (string "ssh-ed25519", string 64-byte signature)

and the Ed25519 signature covers ``"SSHSIG" || string namespace || string reserved
|| string hash_algorithm || string H(message)``, never the message itself, so a
signature made for one namespace cannot stand for another kind of document.

Namespaces name what a signature is for: ``escrow-<kind>@<ESCROW_SIGNATURE_DOMAIN>``.
The domain is a setting that must never change (old signatures name it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

__all__ = [
    "KINDS",
    "PRINCIPAL",
    "SshSigError",
    "allowed_signers_line",
    "load_openssh_public_key",
    "namespace",
    "openssh_public_key",
    "sign",
    "sign_digest",
    "verify",
]

PRINCIPAL = "escrow"
# What the system signs; "witness" signatures are the notaries', not the system's.
KINDS = ("manifest", "receipt", "certificate", "checkpoint", "witness", "verification")
SYSTEM_KINDS = tuple(kind for kind in KINDS if kind != "witness")

MAGIC = b"SSHSIG"
VERSION = 1
KEY_TYPE = b"ssh-ed25519"
HASH_ALGORITHM = "sha512"
HASHES = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
COLUMNS = 70
# A real Ed25519 signature is under 300 bytes; refuse to decode anything huge.
MAX_ARMOR = 4096
# ESCROW_SIGNATURE_DOMAIN: DNS labels joined by dots.
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN = re.compile(rf"{LABEL}(?:\.{LABEL})*")


class SshSigError(ValueError):
    """A signature or key that is malformed, for something else, or does not verify."""


def namespace(kind: str) -> str:
    """The SSHSIG namespace for one kind of signed document."""
    if kind not in KINDS:
        raise ValueError(f"unknown signature kind {kind!r}: expected one of {', '.join(KINDS)}")
    domain = settings.ESCROW_SIGNATURE_DOMAIN
    if not DOMAIN.fullmatch(domain):
        # A comma, quote or space would also break the allowed_signers line.
        raise ValueError(f"ESCROW_SIGNATURE_DOMAIN {domain!r} is not a domain name")
    return f"escrow-{kind}@{domain}"


def sign(message: bytes, private_key: Ed25519PrivateKey, namespace: str) -> str:
    """The armored SSHSIG signature of ``message``, byte for byte what ``ssh-keygen -Y
    sign -n <namespace>`` prints for the same key (Ed25519 is deterministic)."""
    return sign_digest(HASHES[HASH_ALGORITHM](message).digest(), private_key, namespace)


def sign_digest(sha512: bytes, private_key: Ed25519PrivateKey, namespace: str) -> str:
    """``sign`` for a message hashed elsewhere (a large file read as a stream):
    ``sha512`` is its SHA-512 digest, the only thing of it SSHSIG signs."""
    _check_namespace(namespace)
    if len(sha512) != hashlib.sha512().digest_size:
        raise SshSigError("a SHA-512 digest is 64 bytes")
    signed = _signed_data(namespace, HASH_ALGORITHM, sha512)
    raw_signature = private_key.sign(signed)
    public_blob = _public_key_blob(private_key.public_key())
    blob = (
        MAGIC
        + struct.pack(">I", VERSION)
        + _string(public_blob)
        + _string(namespace.encode())
        + _string(b"")
        + _string(HASH_ALGORITHM.encode())
        + _string(_string(KEY_TYPE) + _string(raw_signature))
    )
    encoded = base64.b64encode(blob).decode("ascii")
    lines = [encoded[i : i + COLUMNS] for i in range(0, len(encoded), COLUMNS)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def verify(message: bytes, signature: str, public_key: Ed25519PublicKey, namespace: str) -> None:
    """Check an armored SSHSIG signature of ``message`` by ``public_key`` for
    ``namespace``; raise SshSigError naming the first problem found."""
    _check_namespace(namespace)
    reader = _Reader(_dearmor(signature))
    if reader.take(len(MAGIC)) != MAGIC:
        raise SshSigError("not an SSH signature: the blob does not start with SSHSIG")
    version = reader.uint32()
    if version != VERSION:
        raise SshSigError(f"unsupported SSHSIG version {version} (expected {VERSION})")
    signer = _parse_public_key_blob(reader.string())
    signed_namespace = reader.string()
    reserved = reader.string()
    hash_algorithm = reader.string()
    signature_blob = reader.string()
    if not reader.at_end():
        raise SshSigError("trailing bytes after the SSHSIG signature")
    if signed_namespace != namespace.encode():
        shown = signed_namespace.decode("utf-8", "replace")
        raise SshSigError(f"signature is for namespace {shown!r}, not {namespace!r}")
    if reserved:
        raise SshSigError("the reserved field of the signature is not empty")
    algorithm = hash_algorithm.decode("ascii", "replace")
    if algorithm not in HASHES:
        raise SshSigError(f"unsupported hash algorithm {algorithm!r} (expected sha512 or sha256)")
    raw_signature = _parse_signature_blob(signature_blob)
    if signer != _raw(public_key):
        raise SshSigError("signature was made by another key")
    signed = _signed_data(namespace, algorithm, HASHES[algorithm](message).digest())
    try:
        public_key.verify(raw_signature, signed)
    except InvalidSignature:
        raise SshSigError("signature does not match the message") from None


def openssh_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The OpenSSH one-line form, ``ssh-ed25519 AAAA...`` (no comment)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")


def load_openssh_public_key(text: str) -> Ed25519PublicKey:
    """Read ``ssh-ed25519 AAAA... [comment]``; any other key type or text is refused."""
    stripped = text.strip()
    if not stripped or "\n" in stripped:
        raise SshSigError("expected one OpenSSH public key line")
    if not stripped.startswith("ssh-ed25519 "):
        raise SshSigError("not an ssh-ed25519 public key")
    try:
        key = serialization.load_ssh_public_key(stripped.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as error:
        raise SshSigError(f"unreadable OpenSSH public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SshSigError("not an ssh-ed25519 public key")
    return key


def allowed_signers_line(
    public_key: Ed25519PrivateKey | Ed25519PublicKey, principal: str = PRINCIPAL
) -> str:
    """One line of an OpenSSH allowed_signers file (``ssh-keygen -Y verify -f``): the
    principal, the namespaces the system signs, and the key. No trailing newline."""
    if not principal or any(c in principal for c in ' \t\n",'):
        raise ValueError(f"unusable principal {principal!r}")
    namespaces = ",".join(namespace(kind) for kind in SYSTEM_KINDS)
    return f'{principal} namespaces="{namespaces}" {openssh_public_key(public_key)}'


def _check_namespace(value: str) -> None:
    # ssh-keygen refuses an empty namespace; a comma or quote would break allowed_signers.
    if not value or any(c in value for c in ' \t\n",'):
        raise SshSigError(f"unusable namespace {value!r}")


def _signed_data(namespace: str, algorithm: str, digest: bytes) -> bytes:
    return (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(algorithm.encode())
        + _string(digest)
    )


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _public_key_blob(public_key: Ed25519PublicKey) -> bytes:
    return _string(KEY_TYPE) + _string(_raw(public_key))


def _parse_public_key_blob(blob: bytes) -> bytes:
    reader = _Reader(blob, what="public key")
    key_type = reader.string()
    if key_type != KEY_TYPE:
        shown = key_type.decode("ascii", "replace")
        raise SshSigError(f"unsupported key type {shown!r} (only ssh-ed25519)")
    raw = reader.string()
    if len(raw) != 32 or not reader.at_end():
        raise SshSigError("malformed ssh-ed25519 public key in the signature")
    return raw


def _parse_signature_blob(blob: bytes) -> bytes:
    reader = _Reader(blob, what="signature")
    key_type = reader.string()
    if key_type != KEY_TYPE:
        shown = key_type.decode("ascii", "replace")
        raise SshSigError(f"unsupported signature type {shown!r} (only ssh-ed25519)")
    raw = reader.string()
    if len(raw) != 64 or not reader.at_end():
        raise SshSigError("malformed ssh-ed25519 signature")
    return raw


def _dearmor(text: str) -> bytes:
    if not isinstance(text, str):
        raise SshSigError("the signature must be text")
    if len(text) > MAX_ARMOR:
        raise SshSigError("signature armor too long")
    lines = text.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != BEGIN:
        raise SshSigError(f"bad armor: expected {BEGIN}")
    if lines[-1].strip() != END:
        raise SshSigError(f"bad armor: expected {END}")
    body = "".join(line.strip() for line in lines[1:-1])
    try:
        return base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SshSigError("bad armor: the signature is not valid base64") from None


class _Reader:
    """SSH wire format (RFC 4251 uint32 and string), refusing to read past the end."""

    def __init__(self, data: bytes, *, what: str = "signature") -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise SshSigError(f"truncated {self.what}")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def at_end(self) -> bool:
        return self.offset == len(self.data)
