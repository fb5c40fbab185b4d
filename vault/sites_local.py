"""A storage site that is a folder on a local (or mounted) filesystem: the embedded default.

Layout: an object lives at ``<folder>/<key>``, read-only (0o444). Names starting
with "." can never be keys (see ``validate_key``), so the folder's own
bookkeeping lives beside the objects without colliding: ``.tmp-*`` files being
written, and ``.quarantine/`` holding damaged copies that healing displaced.

No SHA-256 sidecar files: a sidecar is a second file that can rot or drift out
of step with the object, and the digest a copy *should* have is already
recorded in the database (the deposit row) and passed in by the caller. A
local ``stat`` therefore reports ``sha256=None`` and ``hash`` re-reads the
bytes, which on a local disk is cheap enough for scrubbing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from vault.direct_io import DirectWriter
from vault.sites import (
    CHUNK_SIZE,
    Healed,
    SiteError,
    SiteReport,
    StorageSite,
    StoredObject,
    check_expected,
    check_expires_in,
    hash_stream,
    require_match,
    validate_key,
    validate_prefix,
)

QUARANTINE = ".quarantine"
_READ_ONLY = 0o444

#: Errors that a later attempt may not meet (a full disk can be freed, a busy NFS server recovers).
_TRANSIENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EAGAIN,
    errno.EBUSY,
    errno.EINTR,
    errno.ETIMEDOUT,
}


class LocalSite:
    """A vault site in a local folder. It can add and read files; it has no way to remove one."""

    kind = "local"

    def __init__(self, config: StorageSite) -> None:
        if config["kind"] != "local":
            raise ValueError(f"Storage site {config['name']!r} is not a local folder.")
        self.name = config["name"]
        self.root = Path(config["path"])

    def __repr__(self) -> str:
        return f"LocalSite({self.name!r}, {str(self.root)!r})"

    def ensure_ready(self) -> SiteReport:
        """Create the folder if needed and check that it is a writable directory."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._error(error, "create the folder") from error
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise SiteError(f"{self.root} is not a writable folder.", site=self.name)
        return SiteReport(
            name=self.name,
            kind=self.kind,
            versioning=False,
            notes=(
                "A folder keeps no versions: put never replaces a file, and replace_corrupt "
                f"keeps each damaged copy under {QUARANTINE}/.",
            ),
        )

    def put(self, key: str, src: BinaryIO, *, sha256: str, size: int) -> StoredObject:
        """Store ``src`` under ``key`` if its bytes match ``sha256``/``size``; never replace a file.

        The bytes go to a temporary file in the same folder, are fsynced, re-read
        and checked, made read-only, and only then hard-linked to their name:
        ``os.link`` fails instead of replacing an existing file, so two writers
        racing for one key cannot overwrite each other.
        """
        check_expected(sha256, size)
        path = self._path(key)
        try:
            existing = self._existing(key, path, sha256=sha256, size=size)
            if existing is not None:
                return existing
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._write_verified(path.parent, src, sha256=sha256, size=size)
            try:
                os.link(temporary, path)
            except FileExistsError:
                # Another writer stored this key since our check: fine if it is the same object.
                raced = self._existing(key, path, sha256=sha256, size=size)
                if raced is None:  # pragma: no cover - the file vanished, which nothing here does
                    raise SiteError(
                        f"{key!r} appeared and vanished during put.", site=self.name
                    ) from None
                return raced
            finally:
                # Only our own temporary name goes; the object keeps its link.
                temporary.unlink(missing_ok=True)
            _fsync_directory(path.parent)
        except OSError as error:
            raise self._error(error, f"store {key!r}") from error
        return StoredObject(key=key, size=size, sha256=sha256)

    def begin_put(self, key: str) -> LocalPending:
        """Start a one-pass write of ``key``: a hidden temporary file until ``commit``."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            os.close(descriptor)
        except OSError as error:
            raise self._error(error, f"start storing {key!r}") from error
        pending = LocalPending(self, key, path, Path(name))
        try:
            pending.open()
        except OSError as error:
            pending.abort()
            raise self._error(error, f"start storing {key!r}") from error
        return pending

    def open(self, key: str) -> BinaryIO:
        """Return a buffered reader of the file; the caller closes it."""
        path = self._path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise SiteError(f"holds no object under {key!r}.", site=self.name) from None
        except OSError as error:
            raise self._error(error, f"open {key!r}") from error

    def stat(self, key: str) -> StoredObject | None:
        """Size of the file, or None if there is none (``sha256`` is None: see the module note)."""
        path = self._path(key)
        try:
            status = path.stat()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._error(error, f"stat {key!r}") from error
        if not path.is_file():
            raise SiteError(f"{key!r} is not a regular file.", site=self.name)
        return StoredObject(key=key, size=status.st_size, sha256=None)

    def hash(self, key: str) -> str:
        """Re-read the file and return its SHA-256 (hex)."""
        with self.open(key) as stream:
            try:
                return hash_stream(stream)[0]
            except OSError as error:
                raise self._error(error, f"read {key!r}") from error

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys starting with ``prefix`` in sorted order (bookkeeping names excluded)."""
        validate_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0]
        if not start.is_dir():
            return
        for folder, subfolders, files in os.walk(start):
            # Sorting in place makes os.walk descend in order; dot-folders are never keys.
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            relative = Path(folder).relative_to(self.root).as_posix()
            for name in sorted(files):
                if name.startswith("."):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    yield key

    def presigned_url(self, key: str, *, expires_in: int) -> str:
        """Not available: a folder cannot sign links, so the app serves local files itself.

        The app issues its own signed URL (at most 3600 s) for local sites and
        streams the file through ``open``.
        """
        validate_key(key)
        check_expires_in(expires_in)
        raise NotImplementedError(
            f"Storage site {self.name!r} is a local folder and cannot presign links; "
            "serve the object through the app's signed download URL instead."
        )

    def replace_corrupt(self, key: str, src: BinaryIO, *, sha256: str, size: int) -> Healed:
        """Heal a damaged file: keep it in ``.quarantine/``, then atomically put the good copy in.

        Refuses (SiteError) when the key holds nothing (use ``put``) or when the
        current file already matches ``sha256``/``size``: healing a good copy
        would only hide a bug in whoever asked.
        """
        check_expected(sha256, size)
        path = self._path(key)
        if self.stat(key) is None:
            raise SiteError(f"holds no object under {key!r} to heal; use put.", site=self.name)
        try:
            with self.open(key) as current:
                bad_sha256, bad_size = hash_stream(current)
        except OSError as error:
            raise self._error(error, f"read {key!r}") from error
        if (bad_sha256, bad_size) == (sha256, size):
            raise SiteError(
                f"the copy under {key!r} is good (sha256 {sha256}); refusing to replace it.",
                site=self.name,
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        quarantined = self.root / QUARANTINE / f"{key}.{stamp}.{bad_sha256[:12]}"
        try:
            temporary = self._write_verified(path.parent, src, sha256=sha256, size=size)
            try:
                quarantined.parent.mkdir(parents=True, exist_ok=True)
                # Link the damaged bytes aside first, so at no moment is any copy gone...
                os.link(path, quarantined)
                _fsync_directory(quarantined.parent)
                # ...then swap: readers see the old file or the new one, never neither.
                os.replace(temporary, path)
                _fsync_directory(path.parent)
            finally:
                temporary.unlink(missing_ok=True)
        except OSError as error:
            raise self._error(error, f"heal {key!r}") from error
        return Healed(
            stored=StoredObject(key=key, size=size, sha256=sha256),
            bad_copy=quarantined.relative_to(self.root).as_posix(),
            bad_sha256=bad_sha256,
        )

    # -- internals -----------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        path = self.root / validate_key(key)
        # validate_key rules out "..", but a symlink planted inside the folder could still
        # lead elsewhere; refuse anything that resolves outside the root.
        root = os.path.realpath(self.root)
        if not os.path.realpath(path).startswith(root + os.sep):
            raise SiteError(f"{key!r} resolves outside the site folder.", site=self.name)
        return path

    def _existing(self, key: str, path: Path, *, sha256: str, size: int) -> StoredObject | None:
        """None if the key is free, the object if it already holds these bytes, else refuse."""
        current = self.stat(key)
        if current is None:
            return None
        if current.size == size:
            with self.open(key) as stream:
                actual_sha256 = hash_stream(stream)[0]
            if actual_sha256 == sha256:
                return StoredObject(key=key, size=size, sha256=sha256)
            found = f"sha256 {actual_sha256}"
        else:
            found = f"{current.size} bytes"
        raise SiteError(
            f"{key!r} already holds a different object ({found}; asked to store sha256 "
            f"{sha256}, {size} bytes); a deposited object never changes. If the stored copy "
            "is damaged, heal it with replace_corrupt.",
            site=self.name,
        )

    def _write_verified(self, folder: Path, src: BinaryIO, *, sha256: str, size: int) -> Path:
        """Write ``src`` to a read-only temporary file in ``folder`` and prove it holds ``sha256``.

        Raises SiteError (nothing left behind) when the source does not match or
        the bytes read back from disk differ from what was written.
        """
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        temporary = Path(name)
        try:
            digest = hashlib.sha256()
            written = 0
            with os.fdopen(descriptor, "wb") as out:
                # Read at most one byte past the promised size: enough to notice a longer source
                # without letting a runaway stream fill the disk.
                while written <= size and (chunk := src.read(min(CHUNK_SIZE, size + 1 - written))):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
                if hasattr(os, "posix_fadvise"):
                    # Drop the cached pages so the read-back below comes from the disk, not RAM.
                    os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            expected = (sha256, size)
            require_match(
                self.name,
                "the source does not match; nothing stored",
                expected=expected,
                actual=(digest.hexdigest(), written),
            )
            os.chmod(temporary, _READ_ONLY)
            with temporary.open("rb") as stored:
                require_match(
                    self.name,
                    "read-back from disk differs; nothing stored",
                    expected=expected,
                    actual=hash_stream(stored),
                )
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary

    def _error(self, error: OSError, action: str) -> SiteError:
        return SiteError(
            f"could not {action}: {error.strerror or error}",
            site=self.name,
            transient=error.errno in _TRANSIENT_ERRNOS,
        )


class LocalPending:
    """A file being written in one pass (``LocalSite.begin_put``): a hidden ``.tmp-*``
    file in the key's folder, made read-only and hard-linked to its name by ``commit``.

    The bytes go through a ``DirectWriter`` (vault.direct_io): with ``O_DIRECT`` where
    the filesystem allows it, so a large deposit neither costs a second copy in memory
    nor leaves gigabytes of dirty pages for the final fsync to wait on."""

    BLOCK = DirectWriter.BLOCK

    def __init__(self, site: LocalSite, key: str, path: Path, temporary: Path) -> None:
        self.key = key
        self._site = site
        self._path = path
        self._temporary = temporary
        self._out: DirectWriter | None = None
        self._committed = False

    def open(self) -> None:
        self._out = DirectWriter.open(self._temporary, 0)

    def __enter__(self) -> LocalPending:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._committed:
            self.abort()

    def write(self, data: bytes | memoryview, /) -> None:
        if self._out is None:
            raise SiteError(f"the write of {self.key!r} was already ended.", site=self._site.name)
        try:
            self._out.write(data)
        except OSError as error:
            self.abort()
            raise self._site._error(error, f"store {self.key!r}") from error

    def commit(self, *, sha256: str, size: int) -> StoredObject:
        check_expected(sha256, size)
        if self._out is None or self._out.descriptor is None:
            raise SiteError(f"the write of {self.key!r} was already ended.", site=self._site.name)
        try:
            written = self._out.finish()
            if written != size:
                raise SiteError(
                    f"{self.key!r}: {written} bytes were written, not {size} as promised; "
                    "nothing stored",
                    site=self._site.name,
                )
            os.fsync(self._out.descriptor)
            os.fchmod(self._out.descriptor, _READ_ONLY)
            self._out.close()
            os.link(self._temporary, self._path)
            self._temporary.unlink()
            _fsync_directory(self._path.parent)
        except FileExistsError:
            self.abort()
            raise SiteError(
                f"{self.key!r} is taken; a one-pass write never replaces an object.",
                site=self._site.name,
            ) from None
        except OSError as error:
            self.abort()
            raise self._site._error(error, f"store {self.key!r}") from error
        except SiteError:
            self.abort()
            raise
        self._committed = True
        self._out = None
        return StoredObject(key=self.key, size=size, sha256=sha256)

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if not self._committed:
            self._temporary.unlink(missing_ok=True)


def _fsync_directory(folder: Path) -> None:
    """Make a new or renamed entry durable (a file's own fsync does not cover its name)."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
