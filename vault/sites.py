"""The vault's storage sites: where encrypted deposits are kept, with no way to delete.

A site is a local folder (``LocalSite`` in ``sites_local``) or an S3-compatible
bucket (``S3Site`` in ``sites_s3``), configured by ``settings.ESCROW_SITES``; the
first is the primary, the others are replicas. Every site offers the same small
interface, ``StorageSiteClient``:

- ``put`` stores an object only if the bytes match the SHA-256 and size the
  caller promises, reads the stored copy back to prove it, is idempotent for
  the same content, and refuses to store different content under a key that
  is taken: a deposited object never changes.
- ``open``, ``stat``, ``hash`` and ``keys`` read; everything streams in
  constant memory.
- ``replace_corrupt`` heals a copy that scrubbing found damaged, and keeps the
  damaged copy (an older S3 version, or a file under ``.quarantine/``).

There is deliberately no delete operation anywhere in the vault: the
published policy promises that stored files are synchronised "without ever
erasing a single file", and the easiest way to keep that promise is to have
no code that could break it. The test suite also refuses every delete call at
the botocore level (``tests/s3server.py``).

Site calls talk to disks and networks and can take minutes; callers must never
make them inside a database transaction, so a slow or failing site cannot hold
row locks (queue the work with ``transaction.on_commit`` instead).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, TypedDict


class StorageSite(TypedDict):
    """One configured site, as config/storage_sites.py reads it from the environment."""

    name: str
    kind: str  # "local" or "s3"
    path: str  # local folder, "" for s3
    bucket: str
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str


#: Streaming chunk size for hashing and copying; memory use never grows beyond a few of these.
CHUNK_SIZE = 1024 * 1024

#: The longest a download link may live: the policy promises "at most one hour".
MAX_LINK_SECONDS = 3600

#: Keys are relative paths of plain segments. A segment starts with a letter or digit, so
#: "." and ".." are impossible and names starting with "." stay free for a site's own
#: bookkeeping (temporary files, the local quarantine).
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_KEY = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_PREFIX = re.compile(rf"(?:{_SEGMENT}/)*(?:[A-Za-z0-9][A-Za-z0-9._-]{{0,127}})?")
MAX_KEY_LENGTH = 512
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class SiteError(Exception):
    """A storage site could not do what was asked.

    ``transient`` is true when trying again later may succeed (the endpoint was
    unreachable, timed out, throttled or answered 5xx); Celery tasks retry only
    those. Everything else (a conflicting object, a failed verification, a
    missing bucket) needs a person and must not be retried blindly.
    """

    def __new__(cls, message: str, *, site: str, transient: bool = False) -> SiteError:
        # A transient error is raised as the named subclass, so that Celery tasks
        # can list it in ``autoretry_for`` (and nothing else is retried).
        if transient and cls is SiteError:
            cls = SiteUnavailable
        return super().__new__(cls, message)

    def __init__(self, message: str, *, site: str, transient: bool = False) -> None:
        super().__init__(f"storage site {site!r}: {message}")
        self.site = site
        self.transient = transient or isinstance(self, SiteUnavailable)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild through a helper so Celery can pickle it.
        return (_rebuild_site_error, (type(self), self.args[0], self.site, self.transient))


class SiteUnavailable(SiteError):
    """A transient site error: unreachable, timed out, throttled or 5xx. Retry later."""


def _rebuild_site_error(
    cls: type[SiteError], message: str, site: str, transient: bool
) -> SiteError:
    error = cls.__new__(cls, message, site=site, transient=transient)
    Exception.__init__(error, message)
    error.site, error.transient = site, transient
    return error


class InvalidKeyError(ValueError):
    """A key that is not a plain relative path of allowed characters."""


@dataclass(frozen=True)
class StoredObject:
    """One object as a site holds it.

    ``sha256`` is ``None`` when the site cannot tell without reading the bytes
    (``stat`` on a local folder); ``version_id`` is ``None`` on local folders.
    """

    key: str
    size: int
    sha256: str | None
    version_id: str | None = None


@dataclass(frozen=True)
class Healed:
    """The result of ``replace_corrupt``: the good copy now in place, and where the bad one went.

    ``bad_copy`` names the kept damaged copy: ``"version <id>"`` on S3, or the
    path below the site root (``.quarantine/...``) on a local folder.
    """

    stored: StoredObject
    bad_copy: str
    bad_sha256: str


@dataclass(frozen=True)
class SiteReport:
    """What ``ensure_ready`` found (and set up) on a site, for logs and the admin."""

    name: str
    kind: str
    versioning: bool
    object_lock_mode: str | None = None
    object_lock_days: int | None = None
    notes: tuple[str, ...] = ()


class PendingObject(Protocol):
    """An object being written in one pass, from ``StorageSiteClient.begin_put``.

    Nothing is visible under ``key`` until ``commit`` returns: a local site writes a
    hidden temporary file in the site folder, an S3 site a multipart upload. ``abort``
    discards what was written (the temporary file removed, the multipart upload
    aborted); it is idempotent and safe after a failed ``commit``. Used as a context
    manager, leaving the block without a ``commit`` aborts.

    ``commit`` does not read the object back: the caller hashed the bytes as it wrote
    them and promises that hash, the site checks the size it received and makes the
    object durable (fsync, or S3's acknowledgement of every part's checksum). Proving
    the bytes by reading them back is the replication step's work (see
    docs/architecture.md, "What each deposit state promises")."""

    key: str

    def write(self, data: bytes | memoryview, /) -> None:
        """Append ``data``; it is consumed (copied or written) before this returns."""
        ...

    def commit(self, *, sha256: str, size: int) -> StoredObject:
        """Make the object visible and durable under ``key``; SiteError leaves nothing."""
        ...

    def abort(self) -> None:
        """Discard everything written; nothing becomes visible."""
        ...

    def __enter__(self) -> PendingObject: ...

    def __exit__(self, *exc_info: object) -> None: ...


class StorageSiteClient(Protocol):
    """The operations every storage site offers. There is intentionally no way to remove."""

    @property
    def name(self) -> str:
        """The site's name from settings (``primary``, ``replica``...)."""
        ...

    @property
    def kind(self) -> str:
        """``"local"`` or ``"s3"``."""
        ...

    def ensure_ready(self) -> SiteReport:
        """Check (and where allowed, set up) the site; SiteError if it cannot keep objects safe."""
        ...

    def put(self, key: str, src: BinaryIO, *, sha256: str, size: int) -> StoredObject:
        """Store ``src`` under ``key`` if it matches ``sha256`` and ``size``, then read it back."""
        ...

    def begin_put(self, key: str) -> PendingObject:
        """Start writing a new object under ``key`` in one pass (see ``PendingObject``)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Return a streaming reader of the object; the caller closes it."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """Describe the object, or return None if the key holds nothing."""
        ...

    def hash(self, key: str) -> str:
        """Re-read the object and return its SHA-256 (hex)."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every key that starts with ``prefix``."""
        ...

    def presigned_url(self, key: str, *, expires_in: int) -> str:
        """Return a download link valid for ``expires_in`` seconds (at most 3600)."""
        ...

    def replace_corrupt(self, key: str, src: BinaryIO, *, sha256: str, size: int) -> Healed:
        """Put a verified good copy in place of a damaged one, keeping the damaged one."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise InvalidKeyError saying why."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("A storage key must be a non-empty string.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"Storage key is {len(key)} characters long; at most {MAX_KEY_LENGTH}."
        )
    if key.startswith("/"):
        raise InvalidKeyError(f"Storage key {key[:80]!r} is absolute; keys are relative.")
    if ".." in key.split("/"):
        raise InvalidKeyError(f"Storage key {key[:80]!r} climbs out with '..'.")
    if not _KEY.fullmatch(key):
        raise InvalidKeyError(
            f"Storage key {key[:80]!r} is not allowed: use '/'-separated segments of letters, "
            "digits, '.', '_' and '-', each starting with a letter or digit."
        )
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it could start a valid key (or is empty), else raise InvalidKeyError."""
    if prefix and (len(prefix) > MAX_KEY_LENGTH or not _PREFIX.fullmatch(prefix)):
        raise InvalidKeyError(f"Key prefix {prefix[:80]!r} could not start a valid storage key.")
    return prefix


def check_expected(sha256: str, size: int) -> None:
    """Refuse a malformed expectation before any byte moves."""
    if not _SHA256_HEX.fullmatch(sha256):
        raise ValueError("sha256 must be 64 lower-case hexadecimal characters.")
    if size < 0:
        raise ValueError("size must not be negative.")


def check_expires_in(expires_in: int) -> int:
    """Return ``expires_in`` if it is a whole number of seconds from 1 to 3600."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise ValueError("expires_in must be a whole number of seconds.")
    if not 1 <= expires_in <= MAX_LINK_SECONDS:
        raise ValueError(
            f"A download link may live at most {MAX_LINK_SECONDS} seconds, not {expires_in}."
        )
    return expires_in


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """Read ``stream`` to the end in chunks; return its SHA-256 (hex) and size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def read_up_to(src: BinaryIO, count: int) -> bytes:
    """Read ``count`` bytes, fewer only at the end (raw streams may return short reads)."""
    chunks: list[bytes] = []
    remaining = count
    while remaining > 0 and (chunk := src.read(remaining)):
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def require_match(
    site: str, what: str, *, expected: tuple[str, int], actual: tuple[str, int], advice: str = ""
) -> None:
    """Raise a (non-transient) SiteError unless ``actual`` (sha256, size) equals ``expected``."""
    if actual != expected:
        raise SiteError(
            f"{what}: expected sha256 {expected[0]} and {expected[1]} bytes, "
            f"found sha256 {actual[0]} and {actual[1]} bytes{advice}",
            site=site,
        )
