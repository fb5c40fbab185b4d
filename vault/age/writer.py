"""age encryption as a sink: plaintext is pushed in, ciphertext comes out as it is made.

``encrypt`` pulls its plaintext from a file; the one-pass deposit pipeline
(vault/one_pass.py) instead receives the plaintext piece by piece from a request
body and must encrypt each piece as it arrives. ``AgeWriter`` takes pieces of any
size, encrypts every full 64 KiB chunk at once and holds back only the last one,
because whether a chunk is final (nonce flag 0x01) is known only at ``close``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .api import _wrap_file_key
from .header import FILE_KEY_SIZE, encode_header
from .recipients import Recipient
from .stream import CHUNK_SIZE, NONCE_SIZE, TAG_SIZE, _chunk_nonce, payload_key

#: Receives ciphertext; each object handed over is new and belongs to the receiver.
Emit = Callable[[bytes | bytearray], object]


class AgeWriter:
    """Encrypts pushed plaintext to ``recipients``; ``emit`` receives the age file in pieces.

    The header and payload nonce are emitted at once; after that, every ``write``
    emits the chunks it completed (as one piece, so a 1 MiB write costs one call),
    and ``close`` emits the final chunk. Memory: the piece being encrypted plus at
    most one held-back chunk."""

    def __init__(self, emit: Emit, recipients: Sequence[Recipient]) -> None:
        file_key = os.urandom(FILE_KEY_SIZE)
        nonce = os.urandom(NONCE_SIZE)
        self._emit = emit
        self._aead = ChaCha20Poly1305(payload_key(file_key, nonce))
        self._held = bytearray()
        self._counter = 0
        self._closed = False
        self.plaintext_size = 0
        emit(encode_header(_wrap_file_key(recipients, file_key), file_key) + nonce)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt every chunk that is now known not to be the last one."""
        if self._closed:
            raise ValueError("write to a closed AgeWriter")
        self.plaintext_size += len(data)
        view = memoryview(data)
        if self._held:
            # Top the held-back chunk up first; it is only sealed once more follows it.
            room = CHUNK_SIZE - len(self._held)
            self._held += view[:room]
            view = view[room:]
            if not view:
                return
            out = bytearray((1 + (len(view) - 1) // CHUNK_SIZE) * (CHUNK_SIZE + TAG_SIZE))
            written = self._seal(memoryview(self._held), out, 0)
            self._held = bytearray()
        else:
            out = bytearray(((len(view) - 1) // CHUNK_SIZE) * (CHUNK_SIZE + TAG_SIZE))
            written = 0
        # Everything but the last (possibly full) chunk of this piece is sealed now.
        whole = ((len(view) - 1) // CHUNK_SIZE) * CHUNK_SIZE
        for start in range(0, whole, CHUNK_SIZE):
            written = self._seal(view[start : start + CHUNK_SIZE], out, written)
        self._held += view[whole:]
        if written:
            self._emit(out if written == len(out) else out[:written])

    def close(self) -> None:
        """Seal the held-back chunk as the final one (an empty file has one empty chunk)."""
        if self._closed:
            return
        self._closed = True
        out = bytearray(len(self._held) + TAG_SIZE)
        self._aead.encrypt_into(_chunk_nonce(self._counter, True), bytes(self._held), None, out)
        self._held = bytearray()
        self._emit(out)

    def _seal(self, chunk: memoryview, out: bytearray, at: int) -> int:
        end = at + len(chunk) + TAG_SIZE
        self._aead.encrypt_into(
            _chunk_nonce(self._counter, False), chunk, None, memoryview(out)[at:end]
        )
        self._counter += 1
        return end
