"""The age STREAM payload: ChaCha20-Poly1305 over 64 KiB chunks, in constant memory.

Both directions keep two preallocated chunk buffers and read one chunk ahead:
whether a chunk is the final one (nonce flag 0x01) is only known once the
next read hits end of file. Data moves with ``readinto`` and the AEAD's
``*_into`` methods, so no per-chunk buffers are allocated besides the nonce.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import HeaderError, PayloadError

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16

ProgressCallback = Callable[[int], object]


class Sink(Protocol):
    """Anything with a binary ``write`` (a file, or the armor writer).

    ``write`` receives views of buffers that are reused for the next chunk, so
    it must consume or copy the data before returning (files and BytesIO do).
    """

    def write(self, data: bytes | memoryview, /) -> object: ...


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    """Derive the payload key: HKDF-SHA-256(file key, salt=nonce, info="payload")."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=b"payload").derive(file_key)


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def read_full(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src``; return the byte count, short only at end of file."""
    readinto: Callable[[memoryview], int | None] | None = getattr(src, "readinto", None)
    total = 0
    wanted = len(view)
    while total < wanted:
        if readinto is not None:
            count = readinto(view[total:]) or 0
        else:
            data = src.read(wanted - total)
            count = len(data)
            view[total : total + count] = data
        if count == 0:
            break
        total += count
    return total


def encrypt_payload(
    src: BinaryIO, dst: Sink, file_key: bytes, *, progress: ProgressCallback | None = None
) -> int:
    """Write nonce and encrypted chunks of ``src`` to ``dst``; return the plaintext size."""
    nonce = os.urandom(NONCE_SIZE)
    dst.write(nonce)
    aead = ChaCha20Poly1305(payload_key(file_key, nonce))
    current = memoryview(bytearray(CHUNK_SIZE))
    lookahead = memoryview(bytearray(CHUNK_SIZE))
    sealed = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
    length = read_full(src, current)
    counter = 0
    total = 0
    while True:
        # A full chunk is final only if nothing follows it; an empty file is
        # encoded as a single empty final chunk.
        next_length = read_full(src, lookahead) if length == CHUNK_SIZE else 0
        last = next_length == 0
        out = sealed[: length + TAG_SIZE]
        aead.encrypt_into(_chunk_nonce(counter, last), current[:length], None, out)
        dst.write(out)
        total += length
        if progress is not None:
            progress(total)
        if last:
            return total
        current, lookahead = lookahead, current
        length = next_length
        counter += 1


def decrypt_payload(
    src: BinaryIO, dst: Sink, file_key: bytes, *, progress: ProgressCallback | None = None
) -> int:
    """Decrypt the payload in ``src`` to ``dst``; return the plaintext size.

    Each chunk is written only after it authenticated, so on error ``dst``
    holds exactly the verified prefix of the plaintext.
    """
    nonce = memoryview(bytearray(NONCE_SIZE))
    if read_full(src, nonce) != NONCE_SIZE:
        # The CCTV vectors classify a missing or short nonce as a header failure.
        raise HeaderError("file ends before the payload nonce")
    aead = ChaCha20Poly1305(payload_key(file_key, bytes(nonce)))
    current = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
    lookahead = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
    plain = memoryview(bytearray(CHUNK_SIZE))
    length = read_full(src, current)
    if length == 0:
        raise PayloadError("payload has no chunks: the file is truncated")
    counter = 0
    total = 0
    while True:
        next_length = read_full(src, lookahead) if length == ENCRYPTED_CHUNK_SIZE else 0
        at_end = next_length == 0
        if length < TAG_SIZE:
            raise PayloadError(f"chunk {counter} is shorter than its authentication tag")
        if at_end and length == TAG_SIZE and counter > 0:
            raise PayloadError("final chunk is empty, which only an empty file may have")
        sealed = current[:length]
        out = plain[: length - TAG_SIZE]
        opened = _open_chunk(aead, counter, at_end, sealed, out)
        # A full-size chunk may carry the other flag than its position implies:
        # a final chunk followed by data, or a non-final one followed by end of
        # file. Such a chunk is still authentic, so it is released (as other
        # age implementations do) before reporting what is wrong with the file.
        misplaced = False
        if not opened and length == ENCRYPTED_CHUNK_SIZE:
            misplaced = _open_chunk(aead, counter, not at_end, sealed, out)
        if not (opened or misplaced):
            raise PayloadError(
                f"chunk {counter} failed authentication: the payload is corrupted or truncated"
            )
        dst.write(out)
        total += len(out)
        if progress is not None:
            progress(total)
        if misplaced:
            if at_end:
                raise PayloadError("file is truncated: it ends without a final chunk")
            raise PayloadError("final chunk is followed by trailing data")
        if at_end:
            return total
        current, lookahead = lookahead, current
        length = next_length
        counter += 1


def _open_chunk(
    aead: ChaCha20Poly1305, counter: int, last: bool, sealed: memoryview, out: memoryview
) -> bool:
    try:
        aead.decrypt_into(_chunk_nonce(counter, last), sealed, None, out)
    except InvalidTag:
        # The buffer may hold unverified plaintext; wipe it rather than keep it around.
        out[:] = bytes(len(out))
        return False
    return True


def copy_stream(src: BinaryIO, dst: Sink) -> int:
    """Copy the rest of ``src`` to ``dst`` verbatim in constant memory; return the size."""
    buffer = memoryview(bytearray(1024 * 1024))
    total = 0
    while count := read_full(src, buffer):
        dst.write(buffer[:count])
        total += count
    return total
