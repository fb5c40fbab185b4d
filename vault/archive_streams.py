"""Bounded, verifying decompression for archive inspection.

The standard library's readers are not used on purpose: ``tarfile``'s own
stream mode decompresses each 10 KiB block without an output bound (a bzip2
bomb would land in memory whole) and never checks the gzip CRC; ``zipfile``
trusts a member's declared size. These readers never return more than asked
for, verify each stream's end marker and checksum, and let the caller count
every byte they produce.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Iterator
from typing import Literal, Protocol, cast

from isal import igzip_lib, isal_zlib

from vault.archive_checks import ExpansionBudget, MiB

Compression = Literal["gzip", "xz", "bzip2"]
CHUNK = 64 * 1024
# xz -9 needs 65 MiB to decompress; a header asking for more is hostile.
MAX_DECODER_MEMORY = 128 * MiB
# Errors a damaged compressed stream can raise (bz2 raises a plain OSError).
DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (
    zlib.error,
    cast("type[Exception]", isal_zlib.error),  # a class, though its stub says an instance
    lzma.LZMAError,
    OSError,
    EOFError,
)


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class SeekableReadable(Readable, Protocol):
    def seek(self, offset: int, whence: int = ..., /) -> int: ...


class Decompressor(Protocol):
    """The bz2/lzma decompressor interface; zlib is adapted to it below."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


class TruncatedStream(EOFError):
    """A compressed stream ended before its end-of-stream marker."""


class ZlibDecompressor:
    """zlib's decompressor made to behave like bz2/lzma's: input that could not
    be used within ``max_length`` is kept and fed again, not dropped. For a zip's
    deflated members (raw deflate, ``wbits`` -15); the inflating is ISA-L's
    (``isal``), which has zlib's interface and inflates about three times as fast."""

    def __init__(self, wbits: int) -> None:
        self._zlib = isal_zlib.decompressobj(wbits)
        self._tail = b""

    @property
    def eof(self) -> bool:
        return self._zlib.eof

    @property
    def needs_input(self) -> bool:
        return not self._tail

    @property
    def unused_data(self) -> bytes:
        return self._zlib.unused_data

    def decompress(self, data: bytes, max_length: int = CHUNK, /) -> bytes:
        # zlib treats max_length 0 as "unbounded"; never ask it for that.
        output = self._zlib.decompress(self._tail + data, max(max_length, 1))
        self._tail = self._zlib.unconsumed_tail
        return output


def new_decompressor(compression: Compression) -> Decompressor:
    """A decompressor for one stream, checking its format's own integrity data (gzip's
    CRC and length, xz's and bzip2's checks)."""
    if compression == "gzip":
        # ISA-L's own inflater (``isal``), which checks the gzip header, CRC and length
        # like zlib and inflates about three times as fast: a .tar.gz deposit is
        # inspected while it streams, so inflate speed is deposit speed. Unlike zlib's
        # ``decompressobj`` it keeps input it could not use within ``max_length`` itself,
        # as bz2's and lzma's decompressors do.
        return cast(Decompressor, igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP))
    if compression == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=MAX_DECODER_MEMORY)
    return bz2.BZ2Decompressor()


class DecompressingReader:
    """A file-like ``read(n)`` over compressed bytes, returning at most ``n``
    bytes per call so memory stays constant whatever the ratio.

    With ``multi_stream`` (gzip/xz/bzip2 files), concatenated streams are read
    in turn and NUL padding between or after them is allowed; anything else
    after a stream is damage. Without it (a zip member), reading stops at the
    end of the first stream. ``end_marker_required=False`` is for zip LZMA
    members written without an end marker, which simply stop."""

    def __init__(
        self,
        raw: Readable,
        factory: Compression | Decompressor,
        *,
        multi_stream: bool = True,
        end_marker_required: bool = True,
    ) -> None:
        self._raw = raw
        self._factory = factory
        self._decompressor = new_decompressor(factory) if isinstance(factory, str) else factory
        self._multi_stream = multi_stream
        self._end_marker_required = end_marker_required
        self._pending = b""
        self._finished = False

    def read(self, size: int = CHUNK, /) -> bytes:
        size = max(size, 1)
        while not self._finished:
            if self._decompressor.eof:
                self._next_stream()
                continue
            data = b""
            if self._decompressor.needs_input:
                data = self._pending or self._raw.read(CHUNK)
                self._pending = b""
                if not data:
                    # The input is exhausted: collect what the decoder still holds.
                    output = self._decompressor.decompress(b"", size)
                    if output:
                        return output
                    if self._end_marker_required:
                        raise TruncatedStream("the compressed data ends before its end marker")
                    self._finished = True
                    return b""
            output = self._decompressor.decompress(data, size)
            if output:
                return output
        return b""

    def _next_stream(self) -> None:
        leftover = self._decompressor.unused_data
        if not self._multi_stream or not isinstance(self._factory, str):
            self._finished = True
            return
        while True:
            data = leftover.lstrip(b"\0")
            if data:
                self._pending = data
                self._decompressor = new_decompressor(self._factory)
                return
            leftover = self._raw.read(CHUNK)
            if not leftover:
                self._finished = True
                return


class ChunkSource:
    """A ``read(n)`` over pieces that arrive one by one (the one-pass pipeline's queue,
    or a file read in large blocks). ``read_view`` hands out slices of a piece without
    copying it, for the member contents that are only hashed. A piece that is an
    exception is raised where it is read: the stream broke there (decompression in
    another thread met damage)."""

    def __init__(self, pieces: Iterator[bytes | bytearray | memoryview | Exception]) -> None:
        self._pieces = pieces
        self._piece = memoryview(b"")

    def _fill(self) -> bool:
        while not self._piece:
            piece = next(self._pieces, None)
            if piece is None:
                return False
            if isinstance(piece, Exception):
                raise piece
            self._piece = memoryview(piece)
        return True

    def read_view(self, size: int = CHUNK, /) -> memoryview:
        """At most ``size`` bytes (fewer at a piece's end; empty at the end of the stream)."""
        if size <= 0 or not self._fill():
            return memoryview(b"")
        view, self._piece = self._piece[:size], self._piece[size:]
        return view

    def read(self, size: int = CHUNK, /) -> bytes:
        return bytes(self.read_view(size))


class ForwardReader:
    """A forward-only file for ``tarfile``'s random-access mode over a stream.

    ``tell`` counts the bytes read; ``seek`` may only move forward, skipping (and
    so still counting) the bytes in between; ``read`` returns exactly what was asked
    for unless the stream ends; ``peek`` looks at the start without consuming it.
    Every byte is charged to ``budget`` (naming ``member``, the one being read)."""

    def __init__(self, inner: Readable, budget: ExpansionBudget) -> None:
        self._inner = inner
        self._views = getattr(inner, "read_view", None)
        self._budget = budget
        self._peeked = b""
        self._position = 0
        self.member: str | None = None

    def peek(self, size: int) -> bytes:
        while len(self._peeked) < size and (data := self._inner.read(size - len(self._peeked))):
            self._peeked += data
        return self._peeked[:size]

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if whence != 0 or offset < self._position:
            raise OSError("the archive stream can only be read forwards")
        while self._position < offset:
            if not self.read_view(min(offset - self._position, 1024 * 1024)):
                break
        return self._position

    def read_view(self, size: int = CHUNK, /) -> bytes | memoryview:
        """Up to ``size`` bytes, possibly fewer before the end: for contents only hashed."""
        if self._peeked:
            data: bytes | memoryview = self._peeked[:size]
            self._peeked = self._peeked[size:]
        elif self._views is not None:
            data = self._views(size)
        else:
            data = self._inner.read(size)
        self._position += len(data)
        self._budget.spend(len(data), member=self.member)
        return data

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        pieces: list[bytes] = []
        wanted = size
        while wanted > 0 and (data := self.read_view(min(wanted, 1024 * 1024))):
            pieces.append(bytes(data))
            wanted -= len(data)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class SliceReader:
    """At most ``length`` bytes of a seekable file from ``start``: one zip
    member's compressed data. The file position is reset on every read, so
    two slices of one file never disturb each other."""

    def __init__(self, file: SeekableReadable, *, start: int, length: int) -> None:
        self._file = file
        self._position = start
        self._left = length

    def read(self, size: int = CHUNK, /) -> bytes:
        if self._left <= 0:
            return b""
        self._file.seek(self._position)
        data = self._file.read(min(size, self._left))
        if not data:
            raise TruncatedStream("the archive ends in the middle of a member")
        self._position += len(data)
        self._left -= len(data)
        return data
