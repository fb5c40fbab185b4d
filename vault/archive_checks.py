"""The rules every archive member must pass, whatever the archive format.

Shared by the tar and zip walkers: the limits, the rejection error, the member
record, the name and path rules, the expansion budget (counted from real bytes,
never from headers) and the whole-tree checks (duplicates, links) that can only
be made once every member has been seen.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

MiB = 1024 * 1024
GiB = 1024 * MiB

RejectionCode = Literal[
    "not_an_archive",
    "corrupt_archive",
    "path_traversal",
    "absolute_path",
    "link_escapes",
    "special_member",
    "encrypted_member",
    "too_many_members",
    "too_large_expanded",
    "expansion_ratio",
    "empty_archive",
    "too_large_archive",
    "duplicate_member",
    "bad_member_name",
    "unsupported_compression",
]
MemberKind = Literal["file", "dir", "symlink", "hardlink"]

# Longer names than this are refused by every common filesystem anyway.
MAX_NAME_LENGTH = 4096
# Linux gives up resolving a path after 40 symlinks (ELOOP); so do we.
MAX_LINK_HOPS = 40
# A requirements file bigger than this is not worth parsing for pins.
MAX_REQUIREMENTS_BYTES = 1 * MiB

_DRIVE_PREFIX = re.compile(r"^[A-Za-z]:")
_REQUIREMENTS_NAME = re.compile(r"^requirements[\w.-]*\.txt$", re.IGNORECASE)
# Control characters (Unicode category Cc), plus the bidirectional overrides
# that make a name read differently from what it is ("Trojan Source").
_FORBIDDEN_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class ArchiveRejected(Exception):
    """The archive is refused. ``code`` is stable and machine-readable;
    ``message`` is a sentence for the depositor naming the problem and member."""

    def __init__(self, code: RejectionCode, message: str, *, member: str | None = None) -> None:
        super().__init__(message)
        self.code: RejectionCode = code
        self.message = message
        # The member may be the very name being refused, so never store it raw.
        self.member = printable(member) if member is not None else None


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what an archive may cost to inspect.

    The expansion ratio (bytes produced by decompression / archive file size)
    is only enforced once more than ``ratio_grace_bytes`` have been produced:
    a tiny archive (an empty tar is 10 KiB of zeros that gzip to 50 bytes) has
    a huge ratio but costs nothing."""

    max_archive_bytes: int = 8 * GiB
    max_members: int = 200_000
    max_expanded_bytes: int = 64 * GiB
    max_ratio: float = 200.0
    ratio_grace_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        if min(self.max_archive_bytes, self.max_members, self.max_expanded_bytes) <= 0:
            raise ValueError("archive limits must be positive")
        if self.max_ratio <= 0 or self.ratio_grace_bytes < 0:
            raise ValueError("archive limits must be positive")


@dataclass(frozen=True, slots=True)
class ArchiveMember:
    """One archive entry. ``sha256`` is set for files only, ``target`` for links
    (a symlink's target is relative to its directory, a hard link's to the root)."""

    path: str
    kind: MemberKind
    size: int = 0
    sha256: str | None = None
    target: str | None = None


def printable(name: str) -> str:
    """A name made safe to print or log: undecodable bytes and invisible
    characters escaped, long names shortened."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text[:200] + ("..." if len(text) > 200 else "")


def shown(name: str) -> str:
    """A name quoted for a message, made safe by ``printable``."""
    return f"'{printable(name)}'"


def check_name_text(name: str, *, what: str, member: str) -> None:
    """Refuse names that are empty, not UTF-8 (tar hands those to us as lone
    surrogates), over-long, or hiding control characters."""
    if not name:
        raise ArchiveRejected("bad_member_name", f"A member has an empty {what}.", member=member)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveRejected(
            "bad_member_name", f"The {what} {shown(name)} is not valid UTF-8.", member=member
        ) from None
    if len(name) > MAX_NAME_LENGTH:
        raise ArchiveRejected(
            "bad_member_name", f"The {what} {shown(name)} is too long.", member=member
        )
    if _FORBIDDEN_CHARACTER.search(name):
        raise ArchiveRejected(
            "bad_member_name",
            f"The {what} {shown(name)} contains a control character.",
            member=member,
        )


def normalise_path(name: str, *, member: str) -> str:
    """The member's path relative to the archive root, with ``./`` and empty
    components dropped and backslashes read as separators (Windows tools
    extract them that way). Returns ``""`` for the root itself."""
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE_PREFIX.match(text):
        raise ArchiveRejected(
            "absolute_path",
            f"Member {shown(name)} has an absolute path; archive paths must be relative.",
            member=member,
        )
    parts = [part for part in text.split("/") if part not in ("", ".")]
    # Windows drops trailing dots and spaces, so ".. " and "..." act as "..".
    if any(part.rstrip(" .") == "" for part in parts):
        raise ArchiveRejected(
            "path_traversal",
            f"Member {shown(name)} uses '..' to climb out of the archive.",
            member=member,
        )
    return "/".join(parts)


def is_requirements_file(path: str) -> bool:
    """Whether a path names a pip requirements file (requirements*.txt)."""
    return bool(_REQUIREMENTS_NAME.match(path.rsplit("/", 1)[-1]))


class RequirementsPins:
    """Decides, while a requirements file streams past, whether every
    requirement in it is pinned to one version (``==``/``===`` or ``--hash``)."""

    def __init__(self) -> None:
        self._text = bytearray()
        self._too_big = False

    def feed(self, chunk: bytes | memoryview) -> None:
        if len(self._text) + len(chunk) > MAX_REQUIREMENTS_BYTES:
            self._too_big = True
            self._text.clear()
        elif not self._too_big:
            self._text += chunk

    def all_pinned(self) -> bool:
        if self._too_big:
            return False
        text = self._text.decode("utf-8", "replace").replace("\\\n", " ")
        requirements = 0
        for raw_line in text.splitlines():
            line = raw_line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(("-e", "--editable")):
                return False
            if line.startswith("-"):  # -r/-c includes and index options pin nothing
                continue
            requirements += 1
            if "--hash" not in line and "==" not in line.split(";", 1)[0]:
                return False
        return requirements > 0


class ExpansionBudget:
    """Counts bytes as decompression really produces them and stops the
    inspection the moment they pass the expanded-size or ratio limit."""

    def __init__(
        self, limits: ArchiveLimits, *, archive_size: int | Callable[[], int], what: str
    ) -> None:
        """``archive_size`` is the archive's size, or for an archive still arriving, a
        function giving the bytes received so far (the ratio is then judged on those)."""
        self._limits = limits
        self._archive_size = archive_size
        self._what = what
        self.spent = 0

    def spend(self, count: int, *, member: str | None) -> None:
        self.spent += count
        limits = self._limits
        if self.spent > limits.max_expanded_bytes:
            raise ArchiveRejected(
                "too_large_expanded",
                f"The {self._what} expands past the limit of {limits.max_expanded_bytes} "
                f"bytes{self._where(member)}; inspection stopped.",
                member=member,
            )
        if self.spent > limits.ratio_grace_bytes and (
            self.spent > limits.max_ratio * self.archive_size
        ):
            raise ArchiveRejected(
                "expansion_ratio",
                f"The {self._what} expands to more than {limits.max_ratio:g} times the size "
                f"of the archive{self._where(member)}: it looks like a decompression bomb.",
                member=member,
            )

    @property
    def archive_size(self) -> int:
        size = self._archive_size
        return max(size() if callable(size) else size, 1)

    @staticmethod
    def _where(member: str | None) -> str:
        return f" (in member {shown(member)})" if member else ""


def digest_member(
    chunks: Iterable[bytes | memoryview],
    *,
    path: str,
    budget: ExpansionBudget,
    pins: RequirementsPins | None = None,
) -> tuple[int, str]:
    """Size and SHA-256 of a member's content, charged to the budget chunk by chunk."""
    sha256 = hashlib.sha256()
    size = 0
    for chunk in chunks:
        budget.spend(len(chunk), member=path)
        sha256.update(chunk)
        size += len(chunk)
        if pins is not None:
            pins.feed(chunk)
    return size, sha256.hexdigest()


class MemberTree:
    """Collects members as they are read and runs the checks that need the
    whole tree: entry count, duplicates, links, writes through links, emptiness."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self._entries = 0
        self._members: dict[str, ArchiveMember] = {}
        self._symlinks: dict[str, str] = {}
        self._resolved: dict[str, tuple[str, ...] | None] = {}
        self.pinned_requirements: list[str] = []

    def count_entry(self) -> None:
        """Call once per raw entry, before anything else is done with it."""
        self._entries += 1
        if self._entries > self._limits.max_members:
            raise ArchiveRejected(
                "too_many_members",
                f"The archive has more than {self._limits.max_members} members.",
            )

    def add(self, member: ArchiveMember) -> None:
        """Record a member; a second member with the same path is refused,
        because extracting it would silently replace the first."""
        if member.path in self._members:
            raise ArchiveRejected(
                "duplicate_member",
                f"Member {member.path!r} appears more than once; a later copy would "
                "silently overwrite the earlier one.",
                member=member.path,
            )
        self._members[member.path] = member
        if member.kind == "symlink" and member.target is not None:
            self._symlinks[member.path] = member.target

    def is_file(self, path: str) -> bool:
        member = self._members.get(path)
        return member is not None and member.kind == "file"

    def finish(self) -> tuple[ArchiveMember, ...]:
        """Run the whole-tree checks and return the members sorted by path."""
        not_directories = {path for path, m in self._members.items() if m.kind != "dir"}
        for path in self._members:
            parts = path.split("/")
            for depth in range(1, len(parts)):
                ancestor = "/".join(parts[:depth])
                if ancestor in not_directories:
                    raise ArchiveRejected(
                        "path_traversal",
                        f"Member {path!r} lies inside {ancestor!r}, which is not a directory "
                        "in this archive; extracting it would write through a link.",
                        member=path,
                    )
        for path, target in self._symlinks.items():
            if self._resolve(path, hops=0) is None:
                raise ArchiveRejected(
                    "link_escapes",
                    f"Symlink {path!r} points to {target!r}, which leaves the archive "
                    "(or loops without resolving).",
                    member=path,
                )
        if not any(m.kind == "file" for m in self._members.values()):
            raise ArchiveRejected("empty_archive", "The archive contains no files.")
        return tuple(sorted(self._members.values(), key=lambda m: m.path))

    def _resolve(self, link: str, *, hops: int) -> tuple[str, ...] | None:
        """Where ``link`` really points, following the archive's own symlinks the
        way the OS would (so ``a -> .`` then ``b -> a/..`` is caught), or None if
        it leaves the root or loops. Memoised, so each link is walked once."""
        if link in self._resolved:
            return self._resolved[link]
        if hops > MAX_LINK_HOPS:
            return None
        self._resolved[link] = None  # a loop back to this link counts as escaping
        target = self._symlinks[link].replace("\\", "/")
        position = link.split("/")[:-1]
        result: tuple[str, ...] | None = None
        if not (target.startswith("/") or _DRIVE_PREFIX.match(target)):
            result = self._walk(position, target, hops=hops)
        self._resolved[link] = result
        return result

    def _walk(self, position: list[str], target: str, *, hops: int) -> tuple[str, ...] | None:
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not position:
                    return None
                position.pop()
                continue
            position.append(part)
            joined = "/".join(position)
            if joined in self._symlinks:
                resolved = self._resolve(joined, hops=hops + 1)
                if resolved is None:
                    return None
                position = list(resolved)
        return tuple(position)
