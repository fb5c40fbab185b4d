"""High-level streaming operations: encrypt, decrypt, read and re-wrap headers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import BinaryIO, TypeVar

from .armor import WHITESPACE, ArmoredWriter, open_armored
from .errors import ArmorError, HeaderError, NoIdentityMatchError
from .header import (
    FILE_KEY_SIZE,
    MAX_LINE_SIZE,
    VERSION_PREFIX,
    Header,
    Stanza,
    encode_header,
    parse_header,
)
from .recipients import (
    Identity,
    Recipient,
    ScryptRecipient,
    check_scrypt_alone,
    is_post_quantum,
)
from .stream import (
    NONCE_SIZE,
    ProgressCallback,
    Sink,
    copy_stream,
    decrypt_payload,
    encrypt_payload,
)

_ARMOR_START = b"-----BEGIN"


def encrypt(
    src: BinaryIO,
    dst: BinaryIO,
    recipients: Sequence[Recipient],
    *,
    armor: bool = False,
    progress: ProgressCallback | None = None,
) -> int:
    """Encrypt ``src`` to ``recipients``, streaming the age file into ``dst``.

    ``progress`` is called after every 64 KiB chunk with the number of
    plaintext bytes processed so far. With ``armor=True`` the output is
    PEM-armored text. Returns the plaintext size.
    """
    file_key = os.urandom(FILE_KEY_SIZE)
    header = encode_header(_wrap_file_key(recipients, file_key), file_key)
    if not armor:
        dst.write(header)
        return encrypt_payload(src, dst, file_key, progress=progress)
    writer = ArmoredWriter(dst)
    writer.write(header)
    size = encrypt_payload(src, writer, file_key, progress=progress)
    writer.close()
    return size


def decrypt(
    src: BinaryIO,
    dst: BinaryIO,
    identities: Sequence[Identity],
    *,
    armored: bool | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Decrypt the age file in ``src`` with the first matching identity into ``dst``.

    Only authenticated plaintext is written: if an error is raised part-way,
    ``dst`` holds a verified prefix and the caller must discard it.
    ``armored`` forces (True) or forbids (False) ASCII armor; by default it is
    detected. ``progress`` receives the plaintext bytes written so far.
    ``dst.write`` must consume its argument before returning: the buffers
    passed to it are reused. Returns the plaintext size.
    """
    stream, header = _read_header(src, armored=armored)
    file_key = _unwrap_file_key(header, identities)
    return decrypt_payload(stream, dst, file_key, progress=progress)


def read_header(src: BinaryIO, *, armored: bool | None = None) -> Header:
    """Parse the header of the age file in ``src`` without decrypting anything.

    For a binary file, ``src`` is left positioned at the payload nonce.
    """
    return _read_header(src, armored=armored)[1]


def rewrap_header(
    src: BinaryIO, identities: Sequence[Identity], recipients: Sequence[Recipient]
) -> tuple[bytes, int]:
    """Re-encrypt the file key of ``src`` to new recipients, reading only the header.

    Returns the new header and the offset of the payload (its 16-byte nonce)
    counted from the position ``src`` had on entry; for a file opened at its
    start, that is the absolute offset. The new file is the new header
    followed by the original bytes from that offset on, which are reused
    untouched. Only the header and the 16 nonce bytes after it (checked to
    exist) are read, so the cost does not depend on the payload size.
    ``src`` must be a binary (not armored) age file.
    """
    first_line = src.readline(MAX_LINE_SIZE + 1)
    if not first_line.startswith(VERSION_PREFIX) and first_line.lstrip(WHITESPACE).startswith(
        _ARMOR_START
    ):
        raise ArmorError("armored input has no payload offset; re-wrap it with rewrap()")
    header = parse_header(first_line, src)
    new_header = _rewrapped_header(header, identities, recipients)
    if len(src.read(NONCE_SIZE)) != NONCE_SIZE:
        raise HeaderError("file ends before the payload nonce")
    return new_header, header.size


def rewrap(
    src: BinaryIO,
    dst: BinaryIO,
    identities: Sequence[Identity],
    recipients: Sequence[Recipient],
    *,
    armored: bool | None = None,
    armor: bool = False,
) -> int:
    """Stream ``src`` to ``dst`` with a new header for ``recipients``.

    The payload is copied byte for byte, never decrypted, so its integrity
    is not checked here. Armored input is accepted; the output is binary
    unless ``armor=True``. Returns the number of payload bytes copied.
    """
    stream, header = _read_header(src, armored=armored)
    new_header = _rewrapped_header(header, identities, recipients)
    out: Sink = ArmoredWriter(dst) if armor else dst
    out.write(new_header)
    copied = copy_stream(stream, out)
    if copied < NONCE_SIZE:
        raise HeaderError("file ends before the payload nonce")
    if isinstance(out, ArmoredWriter):
        out.close()
    return copied


def _read_header(src: BinaryIO, *, armored: bool | None) -> tuple[BinaryIO, Header]:
    """Open ``src`` (de-armoring if needed) and parse its header."""
    first_line = src.readline(MAX_LINE_SIZE + 1)
    if armored is False or (armored is None and first_line.startswith(VERSION_PREFIX)):
        return src, parse_header(first_line, src)
    line = first_line
    begin_line = line.lstrip(WHITESPACE)
    # Whitespace before the PEM block is allowed, possibly over several lines.
    while line and not begin_line:
        line = src.readline(MAX_LINE_SIZE + 1)
        begin_line = line.lstrip(WHITESPACE)
    if armored is None and not begin_line.startswith(_ARMOR_START):
        return src, parse_header(first_line, src)
    stream = open_armored(src, begin_line)
    return stream, parse_header(stream.readline(MAX_LINE_SIZE + 1), stream)


_R = TypeVar("_R", bound=Recipient)


class MixedPostQuantumRecipients(list[_R]):
    """A recipient list whose owner chose, knowingly, to mix hybrid and X25519 keys.

    Made only by :func:`allow_mixed_post_quantum`; see there."""


def allow_mixed_post_quantum(recipients: Iterable[_R]) -> MixedPostQuantumRecipients[_R]:
    """Mark ``recipients`` as allowed to mix hybrid post-quantum and X25519 keys.

    The spec's rule is a SHOULD NOT, not a MUST NOT. The escrow needs the
    exception while its seal keys move from X25519 to hybrid one approved change
    at a time: refusing would stop every deposit. Such files are exactly as
    strong as X25519-only ones (the X25519 stanza is the weak link), which the
    caller must say where it shows the keys. The mark survives being passed
    along, not copying into a new list.
    """
    return MixedPostQuantumRecipients(recipients)


def check_post_quantum_not_mixed(recipients: Sequence[Recipient]) -> None:
    """Refuse hybrid post-quantum recipients mixed with classical ones (X25519).

    The age spec: a file for a post-quantum recipient "SHOULD NOT" also be
    encrypted to a non-quantum-resistant one, because its X25519 stanza would
    open the file to a future quantum computer anyway; age (1.3 and later)
    refuses such a mix, and so do we, unless the list was made by
    :func:`allow_mixed_post_quantum`. Decryption still accepts mixed files.
    Raises ``ValueError`` naming the problem.
    """
    if isinstance(recipients, MixedPostQuantumRecipients):
        return
    # A passphrase must be alone anyway; that rule (check_scrypt_alone) names it better.
    kinds = {
        is_post_quantum(recipient)
        for recipient in recipients
        if not isinstance(recipient, ScryptRecipient)
    }
    if kinds == {True, False}:
        raise ValueError(
            "hybrid post-quantum (age1pq1...) recipients cannot be mixed with X25519 "
            "(age1...) recipients: the X25519 stanza would leave the file open to a "
            "quantum attacker; use only hybrid keys, or only X25519 keys"
        )


def _wrap_file_key(recipients: Sequence[Recipient], file_key: bytes) -> list[Stanza]:
    if isinstance(recipients, (str, bytes)) or not recipients:
        raise ValueError("at least one recipient is required")
    check_post_quantum_not_mixed(recipients)
    stanzas = [stanza for recipient in recipients for stanza in recipient.wrap(file_key)]
    try:
        check_scrypt_alone(stanzas)
    except HeaderError:
        raise ValueError("a passphrase (scrypt) recipient must be the only recipient") from None
    return stanzas


def _unwrap_file_key(header: Header, identities: Sequence[Identity]) -> bytes:
    if isinstance(identities, (str, bytes)) or not identities:
        raise ValueError("at least one identity is required")
    check_scrypt_alone(header.stanzas)
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is not None:
            if len(file_key) != FILE_KEY_SIZE:
                raise HeaderError("unwrapped file key is not 16 bytes")
            header.verify_mac(file_key)
            return file_key
    raise NoIdentityMatchError("no identity matched any of the file's recipients")


def _rewrapped_header(
    header: Header, identities: Sequence[Identity], recipients: Sequence[Recipient]
) -> bytes:
    file_key = _unwrap_file_key(header, identities)
    return encode_header(_wrap_file_key(recipients, file_key), file_key)
