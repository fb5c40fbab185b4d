"""Walking a tar archive (plain, gzip, xz or bzip2) in one sequential pass.

``tarfile`` parses the headers in stream mode (``r|``), reading forwards only;
decompression is ours (see archive_streams). ``tarfile`` is lenient in ways an
escrow cannot be: it treats a damaged or missing header as the end of the
archive and ignores whatever follows the end marker, so both are checked here.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import IO, ClassVar, NoReturn, Self, cast

from vault.archive_checks import (
    ArchiveMember,
    ArchiveRejected,
    ExpansionBudget,
    MemberTree,
    MiB,
    RequirementsPins,
    check_name_text,
    digest_member,
    is_requirements_file,
    normalise_path,
    shown,
)
from vault.archive_streams import (
    DECOMPRESSION_ERRORS,
    Compression,
    DecompressingReader,
    ForwardReader,
    Readable,
)

BLOCK = 512
# tarfile reads pax records and GNU long names into memory whole, so cap them.
MAX_EXTENDED_HEADER_BYTES = 1 * MiB
# Global pax headers accumulate for the life of the archive.
MAX_GLOBAL_HEADER_BYTES = 1 * MiB
_EXTENDED_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_SPECIAL_TYPE_NAMES = {
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO (named pipe)",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}
_TAR_ERRORS: tuple[type[Exception], ...] = (tarfile.TarError, RecursionError, *DECOMPRESSION_ERRORS)


def looks_like_tar(block: bytes) -> bool:
    """Whether a first 512-byte block starts a tar archive: a ustar/GNU/pax
    header, an old v7 header with a valid checksum, or the end marker itself
    (an empty archive)."""
    if len(block) < BLOCK:
        return False
    header = block[:BLOCK]
    if header.count(0) == BLOCK or header[257:262] == b"ustar":
        return True
    try:
        stored = int(header[148:156].replace(b"\0", b" ").strip(), 8)
    except ValueError:
        return False
    return stored == sum(header[:148]) + 8 * ord(" ") + sum(header[156:])


def walk_tar(
    source: Readable,
    *,
    compression: Compression | None,
    tree: MemberTree,
    content_budget: ExpansionBudget,
    stream_budget: ExpansionBudget,
    decompressed: bool = False,
) -> None:
    """Read every member once, front to back, hashing files into ``tree``. ``source``
    is the archive from its first byte: a file, or a ``ChunkSource`` of the upload as
    it arrives (nothing here seeks backwards). Two budgets: one for file content (a
    sparse member could expand without the stream growing), one for the whole
    decompressed stream (padding after the end marker could be a bomb too).

    ``tarfile`` parses the headers in its random-access mode over a forward-only
    reader: it then seeks only forwards, and member contents are read here directly,
    as views of the arriving pieces, instead of through ``tarfile``'s stream buffer.
    With ``decompressed``, ``source`` is already inflated from ``compression``."""
    raw: Readable = source
    if compression is not None and not decompressed:
        raw = DecompressingReader(source, compression)
    stream = ForwardReader(raw, stream_budget)
    _check_head(stream, compression)
    where: str | None = None  # the member being read, for the error message
    try:
        with tarfile.open(
            fileobj=cast("IO[bytes]", stream),
            mode="r:",
            tarinfo=_strict_tarinfo_class(),
            encoding="utf-8",
            errors="surrogateescape",
        ) as archive:
            while (info := archive.next()) is not None:
                # The archive keeps every header it has read; the tree keeps what we
                # need, so drop them and keep memory flat.
                archive.members.clear()  # type: ignore[attr-defined]
                where = stream.member = info.name
                _take_member(stream, info, tree=tree, budget=content_budget)
            where = stream.member = None
            _check_trailer(stream)
    except _TAR_ERRORS as error:
        place = f"at member {shown(where)}" if where else "between members"
        raise ArchiveRejected(
            "corrupt_archive",
            f"The archive is damaged or truncated {place}: {error or type(error).__name__}.",
            member=where,
        ) from None


def _check_head(stream: ForwardReader, compression: Compression | None) -> None:
    """The first (decompressed) block must start a tar archive; judged by content."""
    try:
        head = stream.peek(BLOCK)
    except DECOMPRESSION_ERRORS as error:
        raise ArchiveRejected(
            "corrupt_archive", f"The {compression} data is damaged or truncated: {error}."
        ) from None
    if looks_like_tar(head):
        return
    if compression:
        raise ArchiveRejected(
            "not_an_archive",
            f"The file is {compression}-compressed, but what it holds is not a tar archive.",
        )
    raise ArchiveRejected(
        "not_an_archive", "The file is not a tar or zip archive (judged by its content)."
    )


def _take_member(
    stream: ForwardReader, info: tarfile.TarInfo, *, tree: MemberTree, budget: ExpansionBudget
) -> None:
    tree.count_entry()
    check_name_text(info.name, what="member name", member=info.name)
    path = normalise_path(info.name, member=info.name)
    if info.isdir():
        if path:  # "./" is the root itself, not a member
            tree.add(ArchiveMember(path, "dir"))
        return
    if not path:
        raise ArchiveRejected(
            "bad_member_name",
            f"Member {shown(info.name)} names the archive root but is not a directory.",
            member=info.name,
        )
    if info.issym():
        check_name_text(info.linkname, what="link target", member=path)
        tree.add(ArchiveMember(path, "symlink", target=info.linkname))
        return
    if info.islnk():
        check_name_text(info.linkname, what="link target", member=path)
        tree.add(ArchiveMember(path, "hardlink", target=_hard_link_target(info, path, tree)))
        return
    if not info.isreg() or info.issparse():
        kind = _SPECIAL_TYPE_NAMES.get(info.type, f"special entry of type {info.type!r}")
        raise ArchiveRejected(
            "special_member",
            f"Member {path!r} is a {kind}; only files, directories and links are allowed.",
            member=path,
        )
    pins = RequirementsPins() if is_requirements_file(path) else None
    size, sha256 = digest_member(_content(stream, info), path=path, budget=budget, pins=pins)
    tree.add(ArchiveMember(path, "file", size=size, sha256=sha256))
    if pins is not None and pins.all_pinned():
        tree.pinned_requirements.append(path)


def _content(stream: ForwardReader, info: tarfile.TarInfo) -> Iterator[bytes | memoryview]:
    """A regular member's bytes, straight from the stream (tarfile has read its header)."""
    stream.seek(info.offset_data)
    left = info.size
    while left > 0:
        data = stream.read_view(min(left, 1024 * 1024))
        if not data:
            raise tarfile.ReadError("unexpected end of data")
        left -= len(data)
        yield data


def _hard_link_target(info: tarfile.TarInfo, path: str, tree: MemberTree) -> str:
    """A tar hard link names an earlier member by its path from the root.
    Only a regular file will do: a hard link to a symlink would re-home the
    symlink's relative target in another directory."""
    try:
        target = normalise_path(info.linkname, member=path)
    except ArchiveRejected:
        target = ""
    if not target or not tree.is_file(target):
        raise ArchiveRejected(
            "link_escapes",
            f"Hard link {path!r} points to {shown(info.linkname)}, which is not a file "
            "earlier in the archive.",
            member=path,
        )
    return target


def _check_trailer(stream: ForwardReader) -> None:
    """Read to the end (so the compressed stream's checksum is verified) and
    refuse anything but zero padding after the end marker: ``tar -i`` would
    extract files hidden there that this inspection never listed."""
    while chunk := stream.read_view(1024 * 1024):
        if bytes(chunk).count(0) != len(chunk):
            raise ArchiveRejected(
                "corrupt_archive",
                "The archive has data after its end-of-archive marker; refusing content "
                "that extraction tools would treat differently.",
            )


def _strict_tarinfo_class() -> type[tarfile.TarInfo]:
    """A TarInfo subclass for one inspection (it counts global header bytes)."""

    class StrictTarInfo(tarfile.TarInfo):
        global_header_bytes: ClassVar[int] = 0

        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
            if bytes(buf).count(0) == BLOCK:
                # The end-of-archive marker: let tarfile signal the end its own way.
                return super().frombuf(buf, encoding, errors)
            try:
                info = super().frombuf(buf, encoding, errors)
            except tarfile.HeaderError as error:
                # Empty, short or bad-checksum header: tarfile would call this
                # the end of the archive; it is damage or truncation.
                raise ArchiveRejected(
                    "corrupt_archive",
                    f"A tar header is missing or damaged ({error}): the archive is "
                    "corrupt or truncated.",
                ) from None
            if info.type == tarfile.GNUTYPE_SPARSE:
                _refuse_sparse(info.name)
            if info.type in _EXTENDED_TYPES and info.size > MAX_EXTENDED_HEADER_BYTES:
                raise ArchiveRejected(
                    "corrupt_archive",
                    f"A tar extended header declares {info.size} bytes; refusing to read it.",
                )
            if info.type == tarfile.XGLTYPE:
                cls.global_header_bytes += info.size
                if cls.global_header_bytes > MAX_GLOBAL_HEADER_BYTES:
                    raise ArchiveRejected(
                        "corrupt_archive", "The archive's global tar headers are too large."
                    )
            return info

        # tarfile reads a GNU 1.0 sparse map of attacker-chosen length into
        # memory before we see the member; refuse it at that point instead.
        def _proc_gnusparse_10(
            self, member: tarfile.TarInfo, pax_headers: dict[str, str], archive: tarfile.TarFile
        ) -> NoReturn:
            _refuse_sparse(member.name)

    return StrictTarInfo


def _refuse_sparse(name: str) -> NoReturn:
    raise ArchiveRejected(
        "special_member",
        f"Member {shown(name)} is a sparse file; only plain files, directories and links "
        "are allowed.",
        member=name,
    )
