"""C2SP signed notes and tlog checkpoints, with Ed25519 note signatures.

The transparency log publishes its tree head as a *checkpoint*
(https://c2sp.org/tlog-checkpoint) inside a *signed note*
(https://c2sp.org/signed-note), the format Go's checksum database, Sigstore
and the transparency-dev witnesses use, so existing tools can read it:

    escrow.example/deposits            <- origin, names the log
    42                                 <- tree size, ASCII decimal
    3q2+7w...=                         <- root hash, standard base64
                                       <- blank line ends the body
    — escrow.example/deposits AbCd...  <- one line per signature (U+2014 dash)

A signature line carries ``base64(key id || Ed25519 signature of the body)``;
the key id is the first four bytes of
``SHA-256(name || 0x0A || 0x01 || 32-byte public key)`` (0x01 = Ed25519).

Parsing is strict because a checkpoint is evidence: anything unexpected
(a missing blank line, a hyphen instead of the em dash, a size with a sign
or leading zero, base64 that does not round-trip, extension lines this log
never writes) raises ``NoteError`` naming the problem. Signature lines by
other keys are skipped, as the spec requires, so a witness may add its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

__all__ = [
    "ED25519_ALGORITHM",
    "NoteError",
    "checkpoint_body",
    "key_id",
    "log_origin",
    "parse_checkpoint",
    "parse_verifier_key",
    "sign_note",
    "split_note",
    "verifier_key",
    "verify_note",
]

ED25519_ALGORITHM = 0x01
SIGNATURE_DASH = "\u2014"  # em dash, as the spec requires
MAX_SIGNATURES = 100
MAX_TREE_SIZE = 2**63 - 1
_ROOT_SIZE = 32
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
# ASCII controls other than newline, and DEL; the note text must be plain lines.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_NAME = re.compile(r"[^\s+]+")


class NoteError(ValueError):
    """A signed note or checkpoint is malformed, or its signature does not verify."""


def log_origin() -> str:
    """Return the origin line of this system's deposit log."""
    return f"{settings.ESCROW_SIGNATURE_DOMAIN}/deposits"


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise NoteError(f"key name {name!r} must be non-empty with no spaces and no '+'")


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """Return the 4-byte key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    _check_name(name)
    digest = hashlib.sha256(
        name.encode() + b"\n" + bytes([ED25519_ALGORITHM]) + _raw_public(public_key)
    )
    return digest.digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """Return the verifier key text ``<name>+<hex key id>+<base64(0x01 || public key)>``."""
    encoded = base64.b64encode(bytes([ED25519_ALGORITHM]) + _raw_public(public_key)).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def _strict_b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def parse_verifier_key(text: str) -> tuple[str, Ed25519PublicKey]:
    """Read a verifier key (``verifier_key`` output) back into its name and public key."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key has three parts: name+keyid+key")
    name, hex_id, encoded = parts
    _check_name(name)
    raw = _strict_b64(encoded, "the verifier key")
    if len(raw) != 33 or raw[0] != ED25519_ALGORITHM:
        raise NoteError("the verifier key is not an Ed25519 key")
    public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_id(name, public_key).hex() != hex_id:
        raise NoteError("the verifier key's key id does not match its name and key")
    return name, public_key


def _check_body(body: str) -> None:
    if not isinstance(body, str) or not body:
        raise NoteError("the note body is empty")
    if not body.endswith("\n"):
        raise NoteError("the note body must end with a newline")
    if _CONTROL.search(body):
        raise NoteError("the note body contains a control character")
    if "\n\n" in body or body.startswith("\n"):
        raise NoteError("the note body contains a blank line")


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """Return the checkpoint text: origin, decimal tree size and base64 root, one per line."""
    if not origin or _CONTROL.search(origin) or "\n" in origin:
        raise NoteError("the checkpoint origin must be one non-empty line")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise NoteError(f"the tree size {size!r} is not a non-negative integer")
    if not isinstance(root, bytes) or len(root) != _ROOT_SIZE:
        raise NoteError("the root hash must be 32 bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint(body: str) -> tuple[str, int, bytes]:
    """Return ``(origin, size, root)`` from a checkpoint body, or raise ``NoteError``."""
    _check_body(body)
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has three lines: origin, tree size, root hash")
    if len(lines) > 3:
        raise NoteError("the checkpoint has extension lines, which this log never writes")
    origin, size_text, root_text = lines
    if not origin.strip() or origin != origin.strip():
        raise NoteError("the checkpoint origin is empty or has surrounding spaces")
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise NoteError(f"the tree size {size_text!r} is not a decimal number")
    root = _strict_b64(root_text, "the root hash")
    if len(root) != _ROOT_SIZE:
        raise NoteError("the root hash is not 32 bytes")
    return origin, int(size_text), root


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the signed note: the body, a blank line and one signature line."""
    _check_body(body)
    public_key = private_key.public_key()
    signature = private_key.sign(body.encode("utf-8"))
    encoded = base64.b64encode(key_id(name, public_key) + signature).decode()
    return f"{body}\n{SIGNATURE_DASH} {name} {encoded}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Split a signed note into its body and ``(name, key id, signature)`` triples.

    Checks the layout only, not any signature.
    """
    if not isinstance(note, str):
        raise NoteError("the note is not text")
    if not note.endswith("\n"):
        raise NoteError("the note must end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("the note has no blank line between its body and its signatures")
    body, signature_text = note[: cut + 1], note[cut + 2 :]
    _check_body(body)
    lines = signature_text[:-1].split("\n") if signature_text else []
    if not lines:
        raise NoteError("the note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has more than {MAX_SIGNATURES} signature lines")
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIGNATURE_DASH + " "):
            raise NoteError(
                f"signature line {number} does not start with an em dash (U+2014) and a space"
            )
        parts = line[2:].split(" ")
        if len(parts) != 2 or not _NAME.fullmatch(parts[0]):
            raise NoteError(f"signature line {number} is not '— <name> <base64 signature>'")
        raw = _strict_b64(parts[1], f"the signature on line {number}")
        if len(raw) < 5:
            raise NoteError(f"the signature on line {number} is too short")
        signatures.append((parts[0], raw[:4], raw[4:]))
    return body, signatures


def verify_note(note: str, name: str, public_key: Ed25519PublicKey) -> str:
    """Return the note's body if ``name``'s key signed it; raise ``NoteError`` otherwise.

    Signature lines by other names or key ids are skipped, as the
    signed-note spec asks; a line by this key whose signature does not
    verify is an error, not something to skip.
    """
    body, signatures = split_note(note)
    wanted = key_id(name, public_key)
    found = [sig for sig_name, sig_id, sig in signatures if sig_name == name and sig_id == wanted]
    if not found:
        raise NoteError(f"the note has no signature by {name} with key id {wanted.hex()}")
    for signature in found:
        try:
            public_key.verify(signature, body.encode("utf-8"))
        except InvalidSignature as exc:
            raise NoteError(f"the signature by {name} does not verify") from exc
    return body
