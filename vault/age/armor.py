"""Strict ASCII armor (PEM, label ``AGE ENCRYPTED FILE``), streamed in constant memory.

Accepted input is exactly what age's encoder writes, except that whitespace
before and after the PEM block is ignored and lines may end in CRLF. Every
other deviation (headers, short or long lines, missing or misplaced padding,
non-canonical base64) is an :class:`ArmorError`, because a lax parser would
make armored files malleable.
"""

from __future__ import annotations

import binascii
import io
from typing import BinaryIO

from .errors import ArmorError
from .stream import Sink

BEGIN_LINE = b"-----BEGIN AGE ENCRYPTED FILE-----"
END_LINE = b"-----END AGE ENCRYPTED FILE-----"
WHITESPACE = b" \t\r\n\v\f"
COLUMNS = 64
BYTES_PER_LINE = 48
_MAX_RAW_LINE = COLUMNS + 2  # 64 columns plus CRLF
_LINES_PER_BATCH = 1024
_TRAILER_READ_SIZE = 64 * 1024


def _split_eol(raw: bytes) -> tuple[bytes, bool]:
    if raw.endswith(b"\r\n"):
        return raw[:-2], True
    if raw.endswith(b"\n"):
        return raw[:-1], True
    return raw, False


class ArmoredReader(io.RawIOBase):
    """Decodes an armored age file; wrap in :class:`io.BufferedReader` for ``readline``."""

    def __init__(self, src: BinaryIO, begin_line: bytes) -> None:
        """``begin_line`` is the first non-whitespace line, leading whitespace removed."""
        super().__init__()
        content, has_eol = _split_eol(begin_line)
        if content != BEGIN_LINE or not has_eol:
            raise ArmorError("armor does not start with the AGE ENCRYPTED FILE begin line")
        self._src = src
        self._pending = memoryview(b"")
        self._saw_final_line = False
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._finished:
            self._pending = memoryview(self._decode_batch())
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _decode_batch(self) -> bytes:
        lines: list[bytes] = []
        while len(lines) < _LINES_PER_BATCH:
            raw = self._src.readline(_MAX_RAW_LINE + 1)
            if not raw:
                raise ArmorError("armor ends without the END line")
            line, has_eol = _split_eol(raw)
            if line.rstrip(WHITESPACE) == END_LINE:
                self._check_only_whitespace_follows()
                self._finished = True
                break
            if len(line) > COLUMNS:
                raise ArmorError("armor line is longer than 64 columns")
            if not has_eol:
                raise ArmorError("armor ends without the END line")
            if self._saw_final_line:
                raise ArmorError("armor has data after a short or padded line")
            if not line:
                raise ArmorError("armor contains an empty line")
            # Only the last base64 line may be short or carry padding.
            self._saw_final_line = len(line) < COLUMNS or line.endswith(b"=")
            lines.append(line)
        if not lines:
            return b""
        encoded = b"".join(lines)
        try:
            decoded = binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            raise ArmorError("armor contains invalid base64") from None
        if binascii.b2a_base64(decoded, newline=False) != encoded:
            raise ArmorError("armor base64 is not canonical")
        return decoded

    def _check_only_whitespace_follows(self) -> None:
        while chunk := self._src.read(_TRAILER_READ_SIZE):
            if chunk.strip(WHITESPACE):
                raise ArmorError("armor END line is followed by data")


def open_armored(src: BinaryIO, begin_line: bytes) -> BinaryIO:
    """Return a buffered binary stream of the age file armored in ``src``."""
    return io.BufferedReader(ArmoredReader(src, begin_line), buffer_size=64 * 1024)


class ArmoredWriter:
    """Armors everything written to it; :meth:`close` writes the END line.

    Closing the writer does not close the underlying destination.
    """

    def __init__(self, dst: Sink) -> None:
        self._dst = dst
        self._carry = bytearray()
        self._closed = False
        dst.write(BEGIN_LINE + b"\n")

    def write(self, data: bytes | memoryview, /) -> int:
        """Buffer ``data`` and emit every complete 64-column line."""
        if self._closed:
            raise ValueError("write to a closed ArmoredWriter")
        self._carry += data
        complete = len(self._carry) - len(self._carry) % BYTES_PER_LINE
        if complete:
            self._dst.write(_encode_lines(bytes(self._carry[:complete])))
            del self._carry[:complete]
        return len(data)

    def close(self) -> None:
        """Flush the final (possibly padded) line and write the END line."""
        if self._closed:
            return
        self._closed = True
        if self._carry:
            self._dst.write(_encode_lines(bytes(self._carry)))
            self._carry.clear()
        self._dst.write(END_LINE + b"\n")


def _encode_lines(data: bytes) -> bytes:
    encoded = binascii.b2a_base64(data, newline=False)
    return b"".join(
        encoded[offset : offset + COLUMNS] + b"\n" for offset in range(0, len(encoded), COLUMNS)
    )
