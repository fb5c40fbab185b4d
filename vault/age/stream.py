"""The age STREAM payload: ChaCha20-Poly1305 over 64 KiB chunks, in constant memory.

Both directions read one chunk ahead into two preallocated buffers: whether a
chunk is the final one (nonce flag 0x01) is only known once the next read
hits end of file. Data moves with ``readinto`` and the AEAD's ``*_into``
methods, so no per-chunk buffers are allocated besides the nonce.

When the destination is an operating-system file (a file object of ``io``), the
output is gathered into a few blocks of several chunks and a second thread
writes them while the next chunks are read and sealed: the AEAD and file I/O
release the GIL, so on two cores writing overlaps the cryptography. Other
destinations (the armor writer, in-memory buffers) receive each chunk as soon
as it is ready, from the calling thread.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
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

#: Chunks per block that the writer thread writes in one call: big enough that
#: handing a block over costs little next to writing it.
_BLOCK_CHUNKS = 4
#: Blocks in flight: one being filled while the others are written. Together
#: with the two read buffers this stays well under 1 MiB per stream.
_BLOCKS = 2


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
    length = read_full(src, current)
    counter = 0
    total = 0
    with _ChunkWriter.for_sink(dst) as writer:
        while True:
            # A full chunk is final only if nothing follows it; an empty file is
            # encoded as a single empty final chunk.
            next_length = read_full(src, lookahead) if length == CHUNK_SIZE else 0
            last = next_length == 0
            out = writer.reserve(length + TAG_SIZE)
            aead.encrypt_into(_chunk_nonce(counter, last), current[:length], None, out)
            writer.commit()
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

    A chunk reaches ``dst`` only after it authenticated, so on error ``dst``
    holds exactly the verified prefix of the plaintext: everything verified
    before the failure is written out before the error is raised.
    """
    nonce = memoryview(bytearray(NONCE_SIZE))
    if read_full(src, nonce) != NONCE_SIZE:
        # The CCTV vectors classify a missing or short nonce as a header failure.
        raise HeaderError("file ends before the payload nonce")
    aead = ChaCha20Poly1305(payload_key(file_key, bytes(nonce)))
    current = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
    lookahead = memoryview(bytearray(ENCRYPTED_CHUNK_SIZE))
    length = read_full(src, current)
    if length == 0:
        raise PayloadError("payload has no chunks: the file is truncated")
    counter = 0
    total = 0
    with _ChunkWriter.for_sink(dst) as writer:
        while True:
            next_length = read_full(src, lookahead) if length == ENCRYPTED_CHUNK_SIZE else 0
            at_end = next_length == 0
            if length < TAG_SIZE:
                raise PayloadError(f"chunk {counter} is shorter than its authentication tag")
            if at_end and length == TAG_SIZE and counter > 0:
                raise PayloadError("final chunk is empty, which only an empty file may have")
            sealed = current[:length]
            out = writer.reserve(length - TAG_SIZE)
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
            writer.commit()
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


class _ChunkWriter:
    """Hands finished chunks to ``dst``, from a writer thread if ``dst`` is an OS file.

    The caller ``reserve``s room for a chunk, fills it, and ``commit``s it only
    once it holds data fit to release; a reserved chunk that is never committed
    is overwritten by the next one and never written. Leaving the ``with``
    block, normally or by an error, writes every committed chunk and waits for
    it, so ``dst`` is complete (up to the failure) when the caller returns; an
    interrupt such as Ctrl-C does not wait.

    With a thread, memory is _BLOCKS blocks of _BLOCK_CHUNKS chunks: one filled
    by the caller while the others are written.
    """

    def __init__(self, dst: Sink, *, threaded: bool) -> None:
        self._dst = dst
        self._error: BaseException | None = None
        self._free: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._filled: queue.SimpleQueue[tuple[memoryview, int] | None] = queue.SimpleQueue()
        chunks, blocks = (_BLOCK_CHUNKS, _BLOCKS) if threaded else (1, 1)
        for _ in range(blocks):
            self._free.put(memoryview(bytearray(chunks * ENCRYPTED_CHUNK_SIZE)))
        self._block = self._take_free_block()
        self._used = 0
        self._reserved = 0
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(
                target=self._write_blocks, name="age-writer", daemon=True
            )
            self._thread.start()

    @classmethod
    def for_sink(cls, dst: Sink) -> _ChunkWriter:
        """A threaded writer for an OS file; a direct one for anything else."""
        return cls(dst, threaded=_is_os_file(dst))

    def __enter__(self) -> _ChunkWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc_info: object) -> None:
        if error_type is None:
            self.close()
        elif issubclass(error_type, Exception):
            # The original error is the one to report; a failed write was already raised.
            with contextlib.suppress(Exception):
                self.close()
        elif self._thread is not None:
            # Interrupted (Ctrl-C): do not wait for a write that may be stuck on a
            # pipe nobody reads; the thread ends after the blocks it already has.
            self._filled.put(None)

    def reserve(self, size: int) -> memoryview:
        """Room for the next chunk of ``size`` bytes (at most ENCRYPTED_CHUNK_SIZE)."""
        if self._used + size > len(self._block):
            self._hand_over()
        self._reserved = size
        return self._block[self._used : self._used + size]

    def commit(self) -> None:
        """Mark the reserved chunk as ready to be written."""
        self._used += self._reserved
        self._reserved = 0
        if self._thread is None:
            self._hand_over()

    def close(self) -> None:
        """Write every committed chunk, wait for the writes, and re-raise a write error."""
        if self._used:
            self._hand_over()
        if self._thread is not None:
            self._filled.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def _hand_over(self) -> None:
        if self._thread is None:
            self._dst.write(self._block[: self._used])
        else:
            if self._error is not None:
                raise self._error
            self._filled.put((self._block, self._used))
            self._block = self._take_free_block()
        self._used = 0

    def _take_free_block(self) -> memoryview:
        block = self._free.get()
        if block is None:
            # The writer thread stopped on an error instead of returning a block.
            raise self._error or RuntimeError("the age writer thread stopped")
        return block

    def _write_blocks(self) -> None:
        """The writer thread: write each filled block, then give it back for reuse."""
        try:
            while (filled := self._filled.get()) is not None:
                block, size = filled
                _write_all(self._dst, block[:size])
                self._free.put(block)
        except BaseException as error:
            self._error = error
            self._free.put(None)


def _write_all(dst: Sink, data: memoryview) -> None:
    """Write all of ``data``: a raw ``io.FileIO`` may accept only part of it."""
    while data:
        written = dst.write(data)
        if not isinstance(written, int) or written >= len(data):
            return
        if written <= 0:
            raise OSError("the output accepted no bytes")
        data = data[written:]


def _is_os_file(stream: object) -> bool:
    """Whether ``stream`` is a plain file object on a descriptor, safe to write from a thread.

    Only the ``io`` classes themselves qualify: other objects may keep
    per-thread state (a database connection, a request), and asking them for
    a descriptor may have side effects (a spooled temporary file moves to disk).
    """
    if not isinstance(stream, io.FileIO | io.BufferedWriter | io.BufferedRandom):
        return False
    try:
        stream.fileno()
    except (OSError, ValueError):
        return False
    return True
