"""The textual age v1 header: stanzas, strict parsing, encoding and the header MAC."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import HeaderError, HeaderMacError

VERSION_PREFIX = b"age-encryption.org/"
VERSION_LINE = VERSION_PREFIX + b"v1\n"
FILE_KEY_SIZE = 16
MAC_SIZE = 32
BODY_COLUMNS = 64
# Bounds that keep a hostile header from consuming unbounded memory. The
# largest legitimate line is a hybrid post-quantum stanza (about 1.5 KB); the
# header size bound still allows tens of thousands of X25519 recipients.
MAX_LINE_SIZE = 16 * 1024
MAX_HEADER_SIZE = 4 * 1024 * 1024

_STANZA_PREFIX = b"-> "
_MAC_PREFIX = b"---"
_MAC_LINE_SIZE = len(b"--- ") + 43 + 1
_BASE64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")
_ARGUMENT = re.compile(rb"[\x21-\x7e]+")


def encode_base64(data: bytes) -> str:
    """Encode ``data`` as unpadded standard base64, as the age header uses it."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").decode("ascii")


def decode_base64(text: str | bytes, *, what: str) -> bytes:
    """Decode canonical unpadded base64, raising :class:`HeaderError` otherwise.

    Canonical means no padding, no characters outside the alphabet, and zero
    unused trailing bits, so that every value has exactly one encoding and the
    header cannot be malleated without breaking its MAC.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if not _BASE64_CHARS.fullmatch(raw) or len(raw) % 4 == 1:
        raise HeaderError(f"{what} is not valid unpadded base64")
    decoded = binascii.a2b_base64(raw + b"=" * (-len(raw) % 4), strict_mode=True)
    if encode_base64(decoded).encode("ascii") != raw:
        raise HeaderError(f"{what} is not canonical base64")
    return decoded


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: its arguments (the first is the type) and its body."""

    args: tuple[str, ...]
    body: bytes

    def __post_init__(self) -> None:
        if not self.args:
            raise ValueError("a stanza needs at least one argument")
        for arg in self.args:
            if not _ARGUMENT.fullmatch(arg.encode("ascii", "replace")):
                raise ValueError(f"invalid stanza argument {arg!r}")

    @property
    def type(self) -> str:
        """The recipient type, i.e. the first argument."""
        return self.args[0]

    def encode(self) -> bytes:
        """Return the stanza as it appears in a header, body wrapped at 64 columns."""
        body = encode_base64(self.body).encode("ascii")
        lines = [_STANZA_PREFIX + " ".join(self.args).encode("ascii")]
        lines += [body[i : i + BODY_COLUMNS] for i in range(0, len(body), BODY_COLUMNS)]
        # The body always ends with a line shorter than 64 columns, even if empty.
        if len(body) % BODY_COLUMNS == 0:
            lines.append(b"")
        return b"\n".join(lines) + b"\n"


@dataclass(frozen=True)
class Header:
    """A parsed age v1 header."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    #: The exact header bytes the MAC covers: everything up to and including "---".
    mac_input: bytes
    #: Size in bytes of the encoded header, MAC line included; the payload
    #: nonce starts right after it.
    size: int

    def verify_mac(self, file_key: bytes) -> None:
        """Raise :class:`HeaderMacError` unless the MAC matches under ``file_key``."""
        if not hmac.compare_digest(compute_mac(file_key, self.mac_input), self.mac):
            raise HeaderMacError("header MAC does not match: the header was modified")


def compute_mac(file_key: bytes, mac_input: bytes) -> bytes:
    """HMAC-SHA-256 of the header, keyed by HKDF(file key, info="header")."""
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"header").derive(file_key)
    return hmac.new(mac_key, mac_input, hashlib.sha256).digest()


def encode_header(stanzas: Sequence[Stanza], file_key: bytes) -> bytes:
    """Serialise a v1 header for ``stanzas``, MAC'd with ``file_key``."""
    if not stanzas:
        raise ValueError("a header needs at least one stanza")
    mac_input = VERSION_LINE + b"".join(stanza.encode() for stanza in stanzas) + _MAC_PREFIX
    mac = compute_mac(file_key, mac_input)
    return mac_input + b" " + encode_base64(mac).encode("ascii") + b"\n"


class _LineReader:
    """Reads header lines with readline() so the stream stops exactly at the payload."""

    def __init__(self, src: BinaryIO, first_line: bytes) -> None:
        self._src = src
        self._pending: bytes | None = first_line
        self.consumed = 0

    def next_line(self) -> bytes:
        if self._pending is not None:
            line, self._pending = self._pending, None
        else:
            line = self._src.readline(MAX_LINE_SIZE + 1)
        self.consumed += len(line)
        if len(line) > MAX_LINE_SIZE:
            raise HeaderError(f"header line is longer than {MAX_LINE_SIZE} bytes")
        if self.consumed > MAX_HEADER_SIZE:
            raise HeaderError(f"header is larger than {MAX_HEADER_SIZE} bytes")
        if not line.endswith(b"\n"):
            raise HeaderError("file ends inside the header")
        return line


def parse_header(first_line: bytes, src: BinaryIO) -> Header:
    """Parse a header whose first line was already read; ``src`` supplies the rest.

    Reading stops right after the MAC line, so ``src`` is left at the nonce.
    """
    if not first_line:
        raise HeaderError("file is empty")
    if first_line != VERSION_LINE:
        if first_line.startswith(VERSION_PREFIX):
            version = first_line[len(VERSION_PREFIX) :].rstrip(b"\n")
            raise HeaderError(f"unsupported age version {version[:32]!r}")
        raise HeaderError("not an age file: the version line is missing")
    lines = _LineReader(src, first_line)
    raw = [lines.next_line()]
    stanzas: list[Stanza] = []
    while True:
        line = lines.next_line()
        if line.startswith(_STANZA_PREFIX):
            raw.append(line)
            stanzas.append(_parse_stanza(line, lines, raw))
        elif line.startswith(_MAC_PREFIX):
            if not stanzas:
                raise HeaderError("header has no recipient stanzas")
            mac = _parse_mac_line(line)
            raw.append(_MAC_PREFIX)
            return Header(
                stanzas=tuple(stanzas),
                mac=mac,
                mac_input=b"".join(raw),
                size=lines.consumed,
            )
        else:
            raise HeaderError("header line is neither a stanza nor the MAC line")


def _parse_stanza(arg_line: bytes, lines: _LineReader, raw: list[bytes]) -> Stanza:
    args = arg_line[len(_STANZA_PREFIX) : -1].split(b" ")
    for arg in args:
        if not _ARGUMENT.fullmatch(arg):
            raise HeaderError("stanza argument is empty or has invalid characters")
    body_lines: list[bytes] = []
    while True:
        line = lines.next_line()
        raw.append(line)
        content = line[:-1]
        if len(content) > BODY_COLUMNS:
            raise HeaderError("stanza body line is longer than 64 columns")
        body_lines.append(content)
        # A line shorter than 64 columns (possibly empty) ends the body.
        if len(content) < BODY_COLUMNS:
            break
    body = decode_base64(b"".join(body_lines), what="stanza body")
    return Stanza(args=tuple(arg.decode("ascii") for arg in args), body=body)


def _parse_mac_line(line: bytes) -> bytes:
    if len(line) != _MAC_LINE_SIZE or not line.startswith(_MAC_PREFIX + b" "):
        raise HeaderError("header MAC line is malformed")
    return decode_base64(line[len(_MAC_PREFIX) + 1 : -1], what="header MAC")
