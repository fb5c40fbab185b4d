"""Inspect a deposited archive safely before anything of it is stored.

``inspect_archive`` reads a tar (plain, gzip, xz, bzip2) or zip file that is
already on disk, walks every member once in constant memory (nothing is
extracted, no member is held in memory), and either returns a report (format,
size and SHA-256 of the archive, each member's path, size and SHA-256) or
raises ``ArchiveRejected`` with a stable ``code``:

- ``not_an_archive``: neither tar nor zip (detected from content, not name);
- ``corrupt_archive``: damaged or truncated, bad checksum, hidden trailing data;
- ``path_traversal`` / ``absolute_path``: a member would land outside the
  extraction directory (``..``, ``/x``, ``C:\\x``, ``\\\\server\\x``, or a path
  that runs through a link);
- ``link_escapes``: a symlink or hard link points outside the tree;
- ``special_member``: devices, FIFOs, sparse files and other special entries;
- ``encrypted_member``: a password-protected zip member;
- ``too_many_members``, ``too_large_archive``, ``too_large_expanded``,
  ``expansion_ratio``: the limits in ``ArchiveLimits``, the expansion counted
  from bytes really produced, never from what headers declare;
- ``empty_archive``: no regular files;
- ``duplicate_member``: one path twice (the later would overwrite the earlier);
- ``bad_member_name``: not UTF-8, control characters, over-long;
- ``unsupported_compression``: zstd tars, zip methods other than
  stored/deflate/bzip2/lzma (e.g. Deflate64), oversized LZMA dictionaries.

The work is split by responsibility: ``archive_checks`` (rules and limits
shared by both formats), ``archive_streams`` (bounded decompression),
``archive_tar`` and ``archive_zip`` (the walkers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from vault.archive_checks import (
    ArchiveLimits,
    ArchiveMember,
    ArchiveRejected,
    ExpansionBudget,
    MemberKind,
    MemberTree,
    RejectionCode,
)
from vault.archive_streams import CHUNK, ChunkSource, Compression
from vault.archive_tar import BLOCK, walk_tar
from vault.archive_zip import walk_zip

__all__ = [
    "ArchiveLimits",
    "ArchiveMember",
    "ArchiveRejected",
    "ArchiveReport",
    "MemberKind",
    "RejectionCode",
    "inspect_archive",
    "inspect_tar_stream",
    "report_of",
    "sniff_format",
]

_COMPRESSION_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class ArchiveReport:
    """What an accepted archive holds. ``members`` is sorted by path;
    ``pinned_requirements`` lists the requirements*.txt files in which every
    requirement is pinned to one version (a lock file in all but name)."""

    format: str
    size: int
    sha256: str
    members: tuple[ArchiveMember, ...]
    pinned_requirements: tuple[str, ...] = ()

    @property
    def expanded_size(self) -> int:
        """Total bytes of the regular files."""
        return sum(member.size for member in self.members if member.kind == "file")


def inspect_archive(
    path: Path, *, limits: ArchiveLimits, known_sha256: str | None = None
) -> ArchiveReport:
    """Inspect the archive at ``path`` and return its report, or raise
    ``ArchiveRejected`` naming the first problem found (and the member).

    ``known_sha256`` spares a second full read when the caller hashed the file
    while writing it (the upload path does, and checks it against the client's)."""
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise ArchiveRejected(
            "too_large_archive",
            f"The archive is {size} bytes; the limit is {limits.max_archive_bytes} bytes.",
        )
    with path.open("rb") as file:
        archive_format, compression = sniff_format(file.read(BLOCK))
        sha256 = known_sha256 or _file_sha256(file)
        file.seek(0)
        if archive_format == "zip":
            tree = MemberTree(limits)
            budget = ExpansionBudget(limits, archive_size=size, what="archive")
            walk_zip(file, archive_size=size, limits=limits, tree=tree, budget=budget)
        else:
            tree = inspect_tar_stream(
                iter(lambda: file.read(1024 * 1024), b""),
                compression=compression,
                limits=limits,
                received=lambda: size,
            )
    return report_of(tree, archive_format=archive_format, size=size, sha256=sha256)


def inspect_tar_stream(
    pieces: Iterator[Any],
    *,
    compression: Compression | None,
    limits: ArchiveLimits,
    received: Callable[[], int],
    decompressed: bool = False,
) -> MemberTree:
    """Inspect a tar archive as it arrives, piece by piece (the one-pass deposit
    pipeline): the same checks as ``inspect_archive``, with the expansion ratio judged
    against ``received()``, the bytes of the archive that arrived so far. With
    ``decompressed`` the pieces were already inflated (in another thread) from
    ``compression``. Returns the finished member tree; the caller knows the archive's
    size and hash at the end."""
    tree = MemberTree(limits)
    walk_tar(
        ChunkSource(pieces),
        compression=compression,
        decompressed=decompressed,
        tree=tree,
        content_budget=ExpansionBudget(limits, archive_size=received, what="archive"),
        stream_budget=ExpansionBudget(
            limits, archive_size=received, what="decompressed tar stream"
        ),
    )
    return tree


def report_of(tree: MemberTree, *, archive_format: str, size: int, sha256: str) -> ArchiveReport:
    """The report of a walked archive: its members sorted, the tree's checks run."""
    members = tree.finish()
    return ArchiveReport(
        format=archive_format,
        size=size,
        sha256=sha256,
        members=members,
        pinned_requirements=tuple(sorted(tree.pinned_requirements)),
    )


def sniff_format(head: bytes) -> tuple[str, Compression | None]:
    """The format from the first bytes (a name can lie; magic numbers rarely do):
    ``("zip", None)``, or ``("tar", None)`` / ``("tar+gzip", "gzip")``... for anything
    else; whether a "tar" really holds tar is judged from its first (decompressed)
    block by the walker, which refuses it as ``not_an_archive``."""
    if head.startswith(_ZIP_MAGIC):
        return "zip", None
    if head.startswith(_ZSTD_MAGIC):
        raise ArchiveRejected(
            "unsupported_compression",
            "The archive is zstd-compressed; please deposit tar with gzip, xz or bzip2, or zip.",
        )
    for magic, compression in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            return f"tar+{compression}", compression
    return "tar", None


def _file_sha256(file: BinaryIO) -> str:
    """SHA-256 of the archive file itself, in chunks."""
    file.seek(0)
    sha256 = hashlib.sha256()
    while chunk := file.read(CHUNK):
        sha256.update(chunk)
    return sha256.hexdigest()
