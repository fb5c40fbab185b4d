"""Walking a zip archive: the central directory through ``zipfile``, each
member's data through our own bounded decompression.

``zipfile`` stops a member at its declared size, so a bomb that declares
small sizes would look harmless (and fail only on its CRC); decompressing
ourselves counts the real bytes. It is also lenient about local headers that
disagree with the central directory and about entries that share data.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from vault.archive_checks import (
    ArchiveLimits,
    ArchiveMember,
    ArchiveRejected,
    ExpansionBudget,
    MemberTree,
    RequirementsPins,
    check_name_text,
    digest_member,
    is_requirements_file,
    normalise_path,
    shown,
)
from vault.archive_streams import (
    CHUNK,
    DECOMPRESSION_ERRORS,
    MAX_DECODER_MEMORY,
    DecompressingReader,
    Readable,
    SeekableReadable,
    SliceReader,
    ZlibDecompressor,
)

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the layout zipfile itself uses
_ENCRYPTED = 0x1
_STRONG_ENCRYPTION = 0x40
_LZMA_END_MARKER = 0x2
_UTF8_NAMES = 0x800
_MAX_LINK_TARGET = 4096
_ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    ValueError,
    *DECOMPRESSION_ERRORS,
)


def walk_zip(
    file: BinaryIO,
    *,
    archive_size: int,
    limits: ArchiveLimits,
    tree: MemberTree,
    budget: ExpansionBudget,
) -> None:
    """Check every entry's name, flags and placement first (cheap), then read
    each member's data once, hashing files into ``tree``."""
    _check_declared_entry_count(file, archive_size=archive_size, limits=limits)
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
    except UnicodeDecodeError:
        raise ArchiveRejected(
            "bad_member_name", "A member name is marked as UTF-8 but is not valid UTF-8."
        ) from None
    except _ZIP_ERRORS as error:
        raise ArchiveRejected("corrupt_archive", f"The zip archive is damaged: {error}.") from None

    # Declared sizes cannot be trusted to be small, but a large one is honest
    # enough to refuse before decompressing anything.
    declared = ExpansionBudget(limits, archive_size=archive_size, what="archive (by its headers)")
    for info in infos:
        declared.spend(info.file_size, member=info.filename)
    entries: list[tuple[zipfile.ZipInfo, str, int]] = []
    spans: list[tuple[int, int, str]] = []
    for info in infos:
        tree.count_entry()
        name = _raw_name(info).decode("utf-8", "surrogateescape")
        check_name_text(name, what="member name", member=name)
        path = normalise_path(name, member=name)
        data_start = _data_start(file, info, name)
        entries.append((info, path, data_start))
        spans.append((info.header_offset, data_start + info.compress_size, path))
    _check_placement(spans, archive_size=archive_size)

    for info, path, data_start in entries:
        try:
            _take_member(file, info, path, data_start, tree=tree, budget=budget)
        except _ZIP_ERRORS as error:
            raise ArchiveRejected(
                "corrupt_archive",
                f"Member {path!r} is damaged: {error or type(error).__name__}.",
                member=path,
            ) from None


def _take_member(
    file: SeekableReadable,
    info: zipfile.ZipInfo,
    path: str,
    data_start: int,
    *,
    tree: MemberTree,
    budget: ExpansionBudget,
) -> None:
    file_type = stat.S_IFMT(info.external_attr >> 16)
    chunks = _member_chunks(file, info, data_start, path)
    if info.orig_filename.endswith(("/", "\\")) or file_type == stat.S_IFDIR:
        if digest_member(chunks, path=path, budget=budget)[0]:
            raise ArchiveRejected(
                "corrupt_archive", f"Directory entry {path!r} carries data.", member=path
            )
        if path:
            tree.add(ArchiveMember(path, "dir"))
        return
    if not path:
        raise ArchiveRejected(
            "bad_member_name", "A member names the archive root but is not a directory."
        )
    if file_type == stat.S_IFLNK:
        tree.add(ArchiveMember(path, "symlink", target=_link_target(chunks, path, budget)))
        return
    if file_type not in (0, stat.S_IFREG):
        raise ArchiveRejected(
            "special_member",
            f"Member {path!r} is a device, FIFO or socket; only files, directories and "
            "links are allowed.",
            member=path,
        )
    pins = RequirementsPins() if is_requirements_file(path) else None
    size, sha256 = digest_member(chunks, path=path, budget=budget, pins=pins)
    if size != info.file_size:
        raise ArchiveRejected(
            "corrupt_archive",
            f"Member {path!r} declares {info.file_size} bytes but holds {size}.",
            member=path,
        )
    tree.add(ArchiveMember(path, "file", size=size, sha256=sha256))
    if pins is not None and pins.all_pinned():
        tree.pinned_requirements.append(path)


def _link_target(chunks: Iterator[bytes], path: str, budget: ExpansionBudget) -> str:
    """A zip symlink keeps its target as the member's content."""
    target = b""
    for chunk in chunks:
        budget.spend(len(chunk), member=path)
        target += chunk
        if len(target) > _MAX_LINK_TARGET:
            raise ArchiveRejected(
                "bad_member_name", f"Symlink {path!r} has an over-long target.", member=path
            )
    text = target.decode("utf-8", "surrogateescape")
    check_name_text(text, what="link target", member=path)
    return text


def _member_chunks(
    file: SeekableReadable, info: zipfile.ZipInfo, data_start: int, path: str
) -> Iterator[bytes]:
    """The member's real decompressed bytes, checked against its CRC at the end."""
    raw = SliceReader(file, start=data_start, length=info.compress_size)
    reader: Readable
    if info.compress_type == zipfile.ZIP_STORED:
        reader = raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        reader = DecompressingReader(raw, ZlibDecompressor(-15), multi_stream=False)
    elif info.compress_type == zipfile.ZIP_BZIP2:
        reader = DecompressingReader(raw, bz2.BZ2Decompressor(), multi_stream=False)
    elif info.compress_type == zipfile.ZIP_LZMA:
        reader = DecompressingReader(
            raw,
            _lzma_decompressor(raw, path),
            multi_stream=False,
            end_marker_required=bool(info.flag_bits & _LZMA_END_MARKER),
        )
    else:
        raise ArchiveRejected(
            "unsupported_compression",
            f"Member {path!r} uses zip compression method {info.compress_type}, which "
            "cannot be read here; use deflate (the default of every zip tool).",
            member=path,
        )
    crc = 0
    while chunk := reader.read(CHUNK):
        crc = zlib.crc32(chunk, crc)
        yield chunk
    if crc != info.CRC:
        raise ArchiveRejected(
            "corrupt_archive", f"Member {path!r} fails its CRC check.", member=path
        )


def _lzma_decompressor(raw: SliceReader, path: str) -> lzma.LZMADecompressor:
    """Zip stores LZMA as a 4-byte version/size prefix, 5 property bytes
    (lc/lp/pb and dictionary size), then a raw LZMA1 stream."""
    prefix = raw.read(4)
    properties = raw.read(5)
    if len(prefix) != 4 or struct.unpack("<H", prefix[2:])[0] != 5 or len(properties) != 5:
        raise ArchiveRejected(
            "corrupt_archive", f"Member {path!r} has a damaged LZMA header.", member=path
        )
    packed, dict_size = properties[0], int.from_bytes(properties[1:], "little")
    # liblzma refuses a memory limit on raw streams, so bound the dictionary here.
    if packed >= 9 * 5 * 5 or dict_size > MAX_DECODER_MEMORY:
        raise ArchiveRejected(
            "unsupported_compression",
            f"Member {path!r} has LZMA settings this service will not decode.",
            member=path,
        )
    lc, lp, pb = packed % 9, packed // 9 % 5, packed // 45
    lzma_filter = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma_filter])


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    """The name's bytes as stored: zipfile decoded them as UTF-8 if flagged,
    else as cp437, which maps every byte and so round-trips exactly."""
    return info.orig_filename.encode("utf-8" if info.flag_bits & _UTF8_NAMES else "cp437")


def _data_start(file: SeekableReadable, info: zipfile.ZipInfo, name: str) -> int:
    """Check the member's local header against the central directory and return
    where its data starts. Streaming unzippers read local headers, so a name
    or flag that differs there would mean two tools see two archives."""
    file.seek(info.header_offset)
    header = file.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise ArchiveRejected(
            "corrupt_archive", f"Member {shown(name)} has no valid local header.", member=name
        )
    fields = _LOCAL_HEADER.unpack(header)
    flags, name_length, extra_length = fields[3], fields[10], fields[11]
    if (flags | info.flag_bits) & (_ENCRYPTED | _STRONG_ENCRYPTION):
        raise ArchiveRejected(
            "encrypted_member",
            f"Member {shown(name)} is password-protected; deposits must be readable "
            "without a password.",
            member=name,
        )
    if file.read(name_length) != _raw_name(info):
        raise ArchiveRejected(
            "corrupt_archive",
            f"Member {shown(name)} has a different name in its local header.",
            member=name,
        )
    return int(info.header_offset) + _LOCAL_HEADER.size + name_length + extra_length


def _check_placement(spans: list[tuple[int, int, str]], *, archive_size: int) -> None:
    """Entries must lie inside the file and must not share bytes: overlapping
    entries are how non-recursive zip bombs reuse one compressed payload."""
    spans.sort()
    for (_, end, path), (next_start, _, next_path) in itertools.pairwise(spans):
        if next_start < end:
            raise ArchiveRejected(
                "corrupt_archive",
                f"Members {path!r} and {next_path!r} overlap inside the archive.",
                member=next_path,
            )
    if spans and spans[-1][1] > archive_size:
        raise ArchiveRejected(
            "corrupt_archive",
            f"Member {spans[-1][2]!r} runs past the end of the archive.",
            member=spans[-1][2],
        )


def _check_declared_entry_count(
    file: SeekableReadable, *, archive_size: int, limits: ArchiveLimits
) -> None:
    """Read the entry count from the end-of-central-directory record (or its
    zip64 form) so a huge directory is refused before zipfile loads it all."""
    tail_size = min(archive_size, 22 + 65535)
    file.seek(archive_size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return  # zipfile will name the damage
    entries: int = struct.unpack_from("<H", tail, at + 10)[0]
    if entries == 0xFFFF and at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":
        file.seek(struct.unpack_from("<Q", tail, at - 12)[0])
        record = file.read(56)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            entries = struct.unpack_from("<Q", record, 32)[0]
    if entries > limits.max_members:
        raise ArchiveRejected(
            "too_many_members", f"The archive has more than {limits.max_members} members."
        )
