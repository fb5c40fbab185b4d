"""Plumbing for the ``manage.py vault`` subcommands that behave like the ``age`` tool.

Choosing the input and output streams, loading recipients and identities,
asking for passphrases, showing progress on a terminal, turning age errors
into one-line reasons, and writing ``-o`` files so that a failed run never
leaves a complete-looking file behind. The command module only wires these
together, one small handler per subcommand.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import io
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from django.core.management.base import CommandError

from vault.age import (
    AgeError,
    ArmorError,
    HeaderError,
    HeaderMacError,
    HybridIdentity,
    Identity,
    NoIdentityMatchError,
    PayloadError,
    PublicRecipient,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    check_post_quantum_not_mixed,
    parse_identity_file,
)
from vault.age import (
    parse_recipient as parse_age_recipient,
)
from vault.age.errors import KeyFormatError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Environment variable holding the passphrase, so scripts need no terminal.
PASSPHRASE_ENV = "AGE_PASSPHRASE"
#: Inputs smaller than this finish too quickly for a progress line to help.
PROGRESS_THRESHOLD = 16 * 1024 * 1024
#: Seconds between progress redraws: a few per second, not one per chunk.
PROGRESS_INTERVAL = 0.25
#: Seconds between the background flushes of an ``-o`` file (see _BackgroundWriteback).
WRITEBACK_INTERVAL = 0.1
#: When set (to anything non-empty), ``-o`` reports its fsync time on stderr.
REPORT_FSYNC_ENV = "VAULT_REPORT_FSYNC"
# Reads of this size or more bypass BufferedReader's own buffer, so the
# library's 64 KiB chunk reads land directly in its buffers without a copy.
_READ_BUFFER_SIZE = 8 * 1024


class VaultCliError(CommandError):
    """An expected failure: reported as one ``vault: ...`` line, exit status 1."""


# Recipients, identities and passphrases


def parse_recipient(text: str, *, where: str) -> PublicRecipient:
    """Parse one ``age1...`` or ``age1pq1...`` recipient; ``where`` names its origin."""
    text = text.strip()
    if text.startswith(("ssh-", "ecdsa-")):
        raise VaultCliError(f"{where}: SSH keys are not supported, only age1... recipients")
    try:
        return parse_age_recipient(text)
    except KeyFormatError as error:
        raise VaultCliError(f"{where}: {error}") from None


def load_recipients(
    recipients: Sequence[str], recipient_files: Sequence[str], *, passphrase: bool = False
) -> list[Recipient]:
    """Collect the recipients of ``-r`` strings and ``-R`` files, or a passphrase.

    A passphrase (``-p``) must be a file's only recipient, as in age.
    """
    if passphrase:
        if recipients or recipient_files:
            raise VaultCliError("-p/--passphrase cannot be combined with -r/-R recipients")
        return [ScryptRecipient(read_passphrase(confirm=True))]
    loaded: list[Recipient] = [
        parse_recipient(text, where=f"recipient {_shorten(text)!r}") for text in recipients
    ]
    for path in recipient_files:
        loaded.extend(_read_recipients_file(path))
    if not loaded:
        raise VaultCliError("no recipients: give -r RECIPIENT, -R FILE or -p/--passphrase")
    try:
        check_post_quantum_not_mixed(loaded)
    except ValueError as error:
        raise VaultCliError(str(error)) from None
    return loaded


def keygen(*, post_quantum: bool, now: str) -> tuple[str, str]:
    """A new identity file as ``age-keygen`` (``-pq``) writes it, and its public key.

    ``now`` is the creation time written in the file's comment (RFC 3339)."""
    identity: HybridIdentity | X25519Identity = (
        HybridIdentity.generate() if post_quantum else X25519Identity.generate()
    )
    public = identity.recipient().to_string()
    text = f"# created: {now}\n# public key: {public}\n{identity.to_string()}\n"
    return text, public


def _read_recipients_file(path: str) -> list[Recipient]:
    text = _read_key_file(path, kind="recipients file")
    recipients: list[Recipient] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            recipients.append(parse_recipient(line, where=f"{path} line {number}"))
    if not recipients:
        raise VaultCliError(f"{path}: recipients file contains no recipients")
    return recipients


def load_identities(paths: Sequence[str], *, passphrase: bool = False) -> list[Identity]:
    """Read the ``-i`` identity files, plus a passphrase identity with ``-p``."""
    identities: list[Identity] = []
    for path in paths:
        identities.extend(_read_identity_file(path))
    if passphrase:
        identities.append(ScryptIdentity(read_passphrase(confirm=False)))
    if not identities:
        raise VaultCliError("no identities: give -i IDENTITY_FILE (or -p/--passphrase)")
    return identities


def _read_identity_file(path: str) -> list[Identity]:
    text = _read_key_file(path, kind="identity file")
    start = text.lstrip()
    if start.startswith(("age-encryption.org/", "-----BEGIN AGE ENCRYPTED FILE")):
        raise VaultCliError(f"{path}: passphrase-protected identity files are not supported")
    if start.startswith("-----BEGIN"):
        raise VaultCliError(
            f"{path}: SSH keys are not supported, only AGE-SECRET-KEY-1... "
            "or AGE-SECRET-KEY-PQ-1... keys"
        )
    try:
        return list(parse_identity_file(text))
    except KeyFormatError as error:
        # The library's message names the line number but never echoes the secret.
        raise VaultCliError(f"{path}: {error}") from None


def _read_key_file(path: str, *, kind: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise VaultCliError(f"cannot read {kind} {path!r}: {_reason(error)}") from None
    except UnicodeDecodeError:
        raise VaultCliError(f"{path}: {kind} is not UTF-8 text") from None


def read_passphrase(*, confirm: bool) -> str:
    """Return the passphrase from ``$AGE_PASSPHRASE``, else ask on the terminal.

    Without the variable and without a terminal it refuses rather than
    letting getpass fall back to reading standard input, which may be the
    data being encrypted.
    """
    from_environment = os.environ.get(PASSPHRASE_ENV)
    if from_environment is not None:
        if not from_environment:
            raise VaultCliError(f"{PASSPHRASE_ENV} is set but empty")
        return from_environment
    if not _has_controlling_terminal():
        raise VaultCliError(
            f"a passphrase is needed but there is no terminal to ask on; set {PASSPHRASE_ENV}"
        )
    try:
        passphrase = getpass.getpass("Enter passphrase: ")
        if confirm and passphrase and getpass.getpass("Confirm passphrase: ") != passphrase:
            raise VaultCliError("the passphrases do not match")
    except EOFError:
        raise VaultCliError("no passphrase entered") from None
    if not passphrase:
        raise VaultCliError("the passphrase must not be empty")
    return passphrase


def _has_controlling_terminal() -> bool:
    try:
        descriptor = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(descriptor)
    return True


# Streams


@contextlib.contextmanager
def open_input(path: str | None, *, label: str) -> Iterator[BinaryIO]:
    """Open the input (a path; standard input for None or ``-``) for streaming.

    When stderr is a terminal and the input is over PROGRESS_THRESHOLD (or
    of unknown size, such as a pipe), reading it drives a progress line.
    """
    if path is None or path == "-":
        raw = io.FileIO(sys.stdin.fileno(), "rb", closefd=False)
    else:
        try:
            raw = io.FileIO(path, "rb")
        except OSError as error:
            raise VaultCliError(f"cannot open input {path!r}: {_reason(error)}") from None
    with raw:
        meter = ProgressMeter.for_terminal(label=label, total=_regular_file_size(raw))
        source: io.RawIOBase = raw if meter is None else _MeteredReader(raw, meter.update)
        try:
            yield io.BufferedReader(source, buffer_size=_READ_BUFFER_SIZE)
        except BaseException:
            if meter is not None:
                meter.abandon()
            raise
        if meter is not None:
            meter.finish()


def refuse_existing_output(path: str | None, *, force: bool) -> None:
    """Fail early, before any prompt or work, if ``-o`` cannot be written as asked."""
    if path is None or path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise VaultCliError(f"output {path!r} is a directory")
    if not target.parent.is_dir():
        raise VaultCliError(f"output folder {str(target.parent)!r} does not exist")
    if (target.exists() or target.is_symlink()) and not force:
        raise VaultCliError(f"output {path!r} already exists; use --force to replace it")


@contextlib.contextmanager
def open_output(path: str | None, *, force: bool, binary: bool) -> Iterator[BinaryIO]:
    """Yield the output stream: standard output for None or ``-``, else a file.

    A file is written under a temporary name in its folder and renamed into
    place only if the block completes, so a failed run leaves no output
    file (and no temporary file). Binary age data is not written to a
    terminal, as age refuses it too.
    """
    if path is None or path == "-":
        stdout = sys.stdout.buffer
        if binary and stdout.isatty():
            raise VaultCliError("refusing to write binary age data to a terminal; use -a or -o")
        yield stdout
        stdout.flush()
        return
    target = Path(path)
    refuse_existing_output(path, force=force)
    try:
        descriptor, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".vault-partial"
        )
    except OSError as error:
        reason = _reason(error)
        raise VaultCliError(f"cannot create a file in {str(target.parent)!r}: {reason}") from None
    temp = Path(temp_name)
    try:
        with open(descriptor, "wb") as stream:
            with _BackgroundWriteback(stream.fileno()) as writeback:
                yield stream
                stream.flush()
            started = time.perf_counter()
            # Durable before visible: after a crash, the file under its final
            # name is either complete or absent, never a truncated one.
            os.fsync(stream.fileno())
        _publish(temp, target, force=force)
        _report_fsync(time.perf_counter() - started, writeback)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class _BackgroundWriteback:
    """Sends the output file to the disk while it is still being written.

    Without it, a large output sits in the page cache until the final fsync,
    which then waits for all of it. A thread asks the kernel every
    WRITEBACK_INTERVAL to start writing the file out (``POSIX_FADV_DONTNEED``
    starts writeback of dirty pages without waiting for it, and drops the
    pages already written), so the disk works alongside the encryption, the
    final fsync waits only for the last part, and a file that is written
    once and archived does not crowd the page cache. It is only a hint:
    errors of the writes themselves are reported by the final fsync, and a
    filesystem that refuses the hint just stops the thread.
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vault-writeback", daemon=True)
        self.seconds = 0.0

    def __enter__(self) -> _BackgroundWriteback:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        if not hasattr(os, "posix_fadvise"):  # not on macOS: the final fsync does it all
            return
        while not self._stop.wait(WRITEBACK_INTERVAL):
            started = time.perf_counter()
            try:
                os.posix_fadvise(self._descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                return
            self.seconds += time.perf_counter() - started


def _report_fsync(seconds: float, writeback: _BackgroundWriteback) -> None:
    """On request (``$VAULT_REPORT_FSYNC``), say on stderr what durability cost."""
    if os.environ.get(REPORT_FSYNC_ENV):
        sys.stderr.write(
            f"vault: final fsync and rename took {seconds:.3f} s "
            f"(before it, {writeback.seconds:.3f} s went into starting writeback early)\n"
        )


def _publish(temp: Path, target: Path, *, force: bool) -> None:
    if force:
        os.replace(temp, target)
    else:
        try:
            # link() fails if the name exists, so a file that appeared while
            # we were writing is never replaced without --force.
            os.link(temp, target)
        except FileExistsError:
            raise VaultCliError(
                f"output {str(target)!r} appeared meanwhile; not replacing it"
            ) from None
        except OSError as error:
            # Some filesystems (FAT, some network mounts) have no hard links.
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            if target.exists():
                raise VaultCliError(f"output {str(target)!r} appeared meanwhile") from None
            os.replace(temp, target)
        else:
            temp.unlink()
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform allows it.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _regular_file_size(raw: io.FileIO) -> int | None:
    status = os.fstat(raw.fileno())
    # Pipes and terminals have no size to show a percentage against.
    return status.st_size if stat.S_ISREG(status.st_mode) else None


# Errors


@contextlib.contextmanager
def age_errors() -> Iterator[None]:
    """Turn age errors into one-line reasons that name the failure class."""
    try:
        yield
    except NoIdentityMatchError as error:
        raise VaultCliError(str(error)) from None
    except HeaderMacError:
        raise VaultCliError("header MAC mismatch: the header was modified or forged") from None
    except HeaderError as error:
        raise VaultCliError(f"header is malformed: {error}") from None
    except ArmorError as error:
        raise VaultCliError(f"armor is malformed: {error}") from None
    except PayloadError as error:
        raise VaultCliError(f"payload failed authentication or is truncated: {error}") from None
    except AgeError as error:
        raise VaultCliError(str(error)) from None


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Progress


class ProgressMeter:
    """One progress line on a terminal: bytes done, total if known, MB/s."""

    def __init__(
        self,
        stream: TextIO,
        *,
        label: str,
        total: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self._clock = clock
        self._started = clock()
        self._last_drawn: float | None = None
        self._done = 0

    @classmethod
    def for_terminal(cls, *, label: str, total: int | None) -> ProgressMeter | None:
        """A meter on stderr if it is a terminal and the input is large or of unknown size."""
        if not sys.stderr.isatty() or (total is not None and total < PROGRESS_THRESHOLD):
            return None
        return cls(sys.stderr, label=label, total=total)

    def update(self, done: int) -> None:
        """Record ``done`` bytes; redraw if PROGRESS_INTERVAL has passed."""
        self._done = done
        # A pipe of unknown size stays quiet until it has proved to be large.
        if self._total is None and done < PROGRESS_THRESHOLD:
            return
        now = self._clock()
        if self._last_drawn is None or now - self._last_drawn >= PROGRESS_INTERVAL:
            self._last_drawn = now
            self._draw(now)

    def finish(self) -> None:
        """Draw the final figures and end the line."""
        if self._total is not None or self._last_drawn is not None:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()

    def abandon(self) -> None:
        """Erase the line, so that an error message that follows stands alone."""
        if self._last_drawn is not None:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-6)
        done = f"{self._done / 1e6:,.1f} MB"
        if self._total:
            done += f" / {self._total / 1e6:,.1f} MB ({100 * self._done // self._total}%)"
        rate = self._done / elapsed / 1e6
        self._stream.write(f"\r{self._label}: {done}, {rate:,.1f} MB/s\x1b[K")
        self._stream.flush()


class _MeteredReader(io.RawIOBase):
    """Passes reads through, reporting the running byte count."""

    def __init__(self, raw: io.FileIO, report: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._report = report
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        count = self._raw.readinto(buffer)
        if count:
            self._done += count
            self._report(self._done)
        return count
