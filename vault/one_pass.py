"""Sealing a deposit in one pass: from the request body to the primary site's pending object.

The body is read once. Each piece goes, through bounded queues, to stages that
run side by side in their own threads (hashing, encryption, decompression and
file writes release the GIL, so the stages share the cores)::

    body ─ read ─┬─ hash the archive, inspect: tar members, hash each ─────────────┐
                 │  (a compressed tar: hash ‖ inflate ─ inspect)                   │
                 ├─ encrypt (age), hash the ciphertext ─ the site's writer thread ─┼─ commit
                 ├─ (zip only) hash the archive, spool it to the intake ───────────┘
                 └─ (with ``copy``, tar only) write the plaintext to the intake copy

Nothing becomes visible before the end: the ciphertext goes to the site's
*pending* object (a hidden temporary file, or an S3 multipart upload), committed
only when the whole archive was read, its hash matched the one the pipeline
claimed and the inspection accepted it. Any other ending aborts the pending
object, so a hostile archive, a damaged upload or a failing site leave nothing.

A zip archive keeps its directory at the end, so it cannot be inspected while
it streams: its plaintext is also spooled to ``spool`` (a file in the intake
folder) and inspected from there once the body has arrived. Tar, plain or
compressed with gzip, xz or bzip2, is inspected as it streams.

With ``copy`` (build verification, issue 16), the plaintext archive is also kept
in the intake folder once accepted: a tar is written there by one more stage, a
zip's spool is renamed to it. It is the only plaintext that outlives the pass, under
a lease of its own (verification.services); any ending but acceptance removes it,
and a copy that cannot be written (a full disk) never fails the deposit: it is left
out, and ``Sealed.copy_problem`` says why.

Memory is bounded by the queues: at most ``DEPTH`` pieces of ``PIECE`` bytes wait
before each stage, whatever the archive's size.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from vault.age.recipients import Recipient
from vault.age.writer import AgeWriter
from vault.archive import (
    ArchiveLimits,
    ArchiveReport,
    inspect_archive,
    inspect_tar_stream,
    report_of,
    sniff_format,
)
from vault.archive_streams import (
    DECOMPRESSION_ERRORS,
    ChunkSource,
    Compression,
    DecompressingReader,
)
from vault.direct_io import DirectWriter
from vault.sites import PendingObject, StoredObject

#: Bytes read from the body at a time.
PIECE = 512 * 1024
#: Pieces that may wait before each stage.
DEPTH = 2
_END = object()
#: Per reading thread: seconds it spent waiting for room in a stage's queue.
_reader_waited = threading.local()


class BodyTooLarge(Exception):
    """The body is longer than the archive size limit (reading stopped there)."""


class BodyMismatch(Exception):
    """The body's SHA-256 is not the one the pipeline claimed: a damaged upload or a
    wrong header. ``sha256`` and ``size`` describe what arrived."""

    def __init__(self, sha256: str, size: int) -> None:
        super().__init__(f"the body's SHA-256 is {sha256} ({size} bytes)")
        self.sha256 = sha256
        self.size = size


@dataclass(frozen=True)
class Sealed:
    """What one pass produced: the archive's report and the committed sealed object."""

    report: ArchiveReport
    stored: StoredObject
    ciphertext_sha256: str
    ciphertext_size: int
    #: CPU seconds each thread used: ``read`` (the reading thread's loop) and each stage
    #: (not the site's own writing thread).
    cpu: dict[str, float] = field(default_factory=dict)
    #: Seconds each step was busy (not waiting on a queue), in the order they are taken:
    #: ``receive`` (reading the body: the network and the client), ``reader waits for
    #: stages`` (the reading thread blocked on a full queue), ``read whole body``, then
    #: each stage (``inspect`` or ``spool``, which also hash the archive, or for a
    #: compressed tar ``hash archive``, ``decompress`` and ``inspect``; ``encrypt``), ``of
    #: which hash and write the ciphertext`` (part of ``encrypt``), ``finish inspection``,
    #: ``commit`` and ``wall``.
    timings: dict[str, float] = field(default_factory=dict)
    #: The plaintext intake copy kept for build verification, if one was asked for and
    #: written; else ``copy_problem`` says why not (empty when none was asked for).
    copy: Path | None = None
    copy_problem: str = ""


class _Stage(threading.Thread):
    """One step of the pass in its own thread, fed pieces through a bounded queue.

    When its work fails it keeps taking pieces until the end, so the stage before it
    never blocks, and hands each to ``on_drop`` (or drops it); the error waits in
    ``error`` for the reader. When it ends, for whatever reason, it passes the end on
    to ``downstream``."""

    def __init__(
        self,
        name: str,
        work: Callable[[Iterator[Any]], Any],
        on_drop: Callable[[Any], object] | None = None,
    ) -> None:
        super().__init__(name=f"one-pass-{name}", daemon=True)
        self._on_drop = on_drop
        self.label = name
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=DEPTH)
        self.downstream: list[_Stage] = []
        self.error: BaseException | None = None
        self.result: Any = None
        self.busy = 0.0
        self.cpu = 0.0
        self._work = work
        self._waited = 0.0
        self._ended = False

    def feed(self, piece: Any) -> None:
        """Queue ``piece``; time the feeder spends waiting for room is not its work."""
        waiting = time.perf_counter()
        self.queue.put(piece)
        waited = time.perf_counter() - waiting
        feeder = threading.current_thread()
        if isinstance(feeder, _Stage):
            feeder._waited += waited
        else:
            _reader_waited.value = getattr(_reader_waited, "value", 0.0) + waited

    def run(self) -> None:
        started = time.perf_counter()
        cpu = time.thread_time()
        try:
            self.result = self._work(self._pieces())
        except BaseException as error:  # handed to the reader, which re-raises it
            self.error = error
        finally:
            self.busy = time.perf_counter() - started - self._waited
            self.cpu = time.thread_time() - cpu
            while not self._ended:
                item = self.queue.get()
                self._ended = item is _END
                if not self._ended and self._on_drop is not None:
                    self._on_drop(item)
            for stage in self.downstream:
                stage.feed(_END)

    def _pieces(self) -> Iterator[Any]:
        while True:
            waiting = time.perf_counter()
            piece = self.queue.get()
            self._waited += time.perf_counter() - waiting
            if piece is _END:
                self._ended = True
                return
            yield piece


class _CiphertextWriter:
    """Where the encryption's output goes, in the encrypting thread: hashed and counted,
    then copied into the pending object (whose own thread writes it to the site)."""

    def __init__(self, pending: PendingObject) -> None:
        self.pending = pending
        self.digest = hashlib.sha256()
        self.size = 0
        self.seconds = 0.0

    def __call__(self, piece: bytes | bytearray) -> None:
        started = time.perf_counter()
        self.digest.update(piece)
        self.size += len(piece)
        self.pending.write(piece)
        self.seconds += time.perf_counter() - started


def _hashed(pieces: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    """The pieces, each added to the archive's hash as the stage takes it."""
    for piece in pieces:
        digest.update(piece)
        yield piece


def seal_in_one_pass(
    body: BinaryIO,
    *,
    recipients: Sequence[Recipient],
    pending: PendingObject,
    limits: ArchiveLimits,
    claimed_sha256: str,
    spool: Path,
    tick: Callable[[], None] = lambda: None,
    before_commit: Callable[[ArchiveReport], object] = lambda report: None,
    copy: Path | None = None,
) -> Sealed:
    """Read ``body`` once: hash, inspect, encrypt for ``recipients`` and write the age
    file into ``pending``, then commit it if everything held. ``tick`` is called for
    every piece read (the intake renews its lease there; raising stops the pass);
    ``before_commit`` with the accepted archive's report, as the last chance to refuse
    it (the intake builds the manifest there; raising aborts the pending object).

    Raises, with ``pending`` aborted and ``spool`` removed: ``BodyTooLarge``,
    ``BodyMismatch``, ``ArchiveRejected``, or what the site or the body raised
    (``SiteError``, ``OSError``...). A rejection is only reported for a body whose
    hash matched: a damaged upload is a ``BodyMismatch``, never a judgement on the
    archive. With ``copy``, the accepted plaintext is also left at that path (0600);
    every other ending removes it."""
    started = time.perf_counter()
    received = 0
    kept = False
    copy_problem = ""
    copier: _Stage | None = None
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    try:
        with pending:
            head, ended = _read_head(body)
            archive_format, compression = sniff_format(head)
            digest = hashlib.sha256()
            ciphertext = _CiphertextWriter(pending)
            encrypt = _Stage("encrypt", lambda pieces: _encrypt(pieces, ciphertext, recipients))
            # The stages that judge the archive: ``first`` takes the body's pieces,
            # ``last`` gives the verdict. The archive's hash is taken by ``first`` as it
            # goes, even after a refusal (``on_drop``), except for a compressed tar, whose
            # inflating is already the longest stage: its hash has a thread of its own.
            hashing: _Stage
            if archive_format == "zip":
                first = last = hashing = _Stage(
                    "spool",
                    lambda pieces: _spool(_hashed(pieces, digest), spool),
                    on_drop=digest.update,
                )
            elif compression is None:
                first = last = hashing = _Stage(
                    "inspect",
                    lambda pieces: inspect_tar_stream(
                        _hashed(pieces, digest),
                        compression=None,
                        limits=limits,
                        received=lambda: received,
                    ),
                    on_drop=digest.update,
                )
            else:
                last = _Stage(
                    "inspect",
                    lambda pieces: inspect_tar_stream(
                        pieces,
                        compression=compression,
                        decompressed=True,
                        limits=limits,
                        received=lambda: received,
                    ),
                )
                first = _Stage("decompress", lambda pieces: _decompress(pieces, compression, last))
                first.downstream.append(last)
                hashing = _Stage("hash archive", lambda pieces: _hash(pieces, digest))
            if copy is not None and archive_format != "zip":
                copier = _Stage("copy", lambda pieces: _write_copy(pieces, copy))
            writers = [encrypt] if copier is None else [encrypt, copier]
            stages = list({id(stage): stage for stage in (hashing, first, last, *writers)}.values())
            for stage in stages:
                stage.start()
            reading = time.perf_counter()
            reading_cpu = time.thread_time()
            _reader_waited.value = 0.0
            receiving = 0.0
            try:
                piece = head
                while piece:
                    received += len(piece)
                    if received > limits.max_archive_bytes:
                        raise BodyTooLarge(f"the body is larger than {limits.max_archive_bytes}")
                    hashing.feed(piece)
                    if encrypt.error:
                        break  # the site or the sealing failed: nothing more to do
                    if first.error is None and last.error is None:
                        # Once the archive is refused, only its hash is still wanted: it
                        # tells a damaged upload from a refused archive.
                        if first is not hashing:
                            first.feed(piece)
                        encrypt.feed(piece)
                        if copier is not None and copier.error is None:
                            copier.feed(piece)
                    tick()
                    now = time.perf_counter()
                    piece = b"" if ended else body.read(PIECE)
                    receiving += time.perf_counter() - now
            finally:
                timings["receive"] = receiving
                timings["reader waits for stages"] = _reader_waited.value
                timings["read whole body"] = time.perf_counter() - reading
                cpu["read"] = time.thread_time() - reading_cpu
                for stage in {id(stage): stage for stage in (hashing, first, *writers)}.values():
                    stage.feed(_END)
                for stage in stages:
                    stage.join()
                    timings[stage.label] = stage.busy
                    cpu[stage.label] = stage.cpu
                timings["of which hash and write the ciphertext"] = ciphertext.seconds
            if encrypt.error is not None:
                raise encrypt.error
            sha256 = digest.hexdigest()
            if sha256 != claimed_sha256:
                raise BodyMismatch(sha256, received)
            for stage in (first, last):
                if stage.error is not None:
                    raise stage.error
            checking = time.perf_counter()
            report = _report(last.result, archive_format, received, sha256, spool, limits)
            before_commit(report)
            committing = time.perf_counter()
            timings["finish inspection"] = committing - checking
            ciphertext_sha256 = ciphertext.digest.hexdigest()
            stored = pending.commit(sha256=ciphertext_sha256, size=ciphertext.size)
            timings["commit"] = time.perf_counter() - committing
            copy_problem = _keep_copy(copy, copier, archive_format, spool)
            kept = copy is not None and not copy_problem
    finally:
        spool.unlink(missing_ok=True)
        if copy is not None and not kept:
            copy.unlink(missing_ok=True)
    timings["wall"] = time.perf_counter() - started
    return Sealed(
        report=report,
        stored=stored,
        ciphertext_sha256=ciphertext_sha256,
        ciphertext_size=ciphertext.size,
        timings=timings,
        cpu=cpu,
        copy=copy if kept else None,
        copy_problem=copy_problem,
    )


def _keep_copy(copy: Path | None, copier: _Stage | None, archive_format: str, spool: Path) -> str:
    """Leave the accepted plaintext at ``copy``: a zip's spool is renamed there, a tar's
    copy was written by its own stage. Returns why it could not be kept, or ``""``."""
    if copy is None:
        return ""
    error: BaseException | None = copier.error if copier is not None else None
    if archive_format == "zip":
        try:
            spool.rename(copy)
        except OSError as renaming:
            error = renaming
    if error is None:
        return ""
    return f"the intake copy could not be written: {getattr(error, 'strerror', None) or error}"


def _read_head(body: BinaryIO) -> tuple[bytes, bool]:
    """The first piece, at least 512 bytes unless the body is shorter (enough to tell the
    format by its magic number), and whether the body ended there."""
    head = body.read(PIECE)
    while head and len(head) < 512:
        more = body.read(PIECE)
        if not more:
            return head, True
        head += more
    return head, not head


def _encrypt(
    pieces: Iterator[bytes], ciphertext: _CiphertextWriter, recipients: Sequence[Recipient]
) -> None:
    sealer = AgeWriter(ciphertext, recipients)
    for piece in pieces:
        sealer.write(piece)
    sealer.close()


def _hash(pieces: Iterator[bytes], digest: Any) -> None:
    """The archive's SHA-256, in a thread of its own: the reading thread only reads."""
    for piece in pieces:
        digest.update(piece)


def _decompress(pieces: Iterator[bytes], compression: Compression, inspect: _Stage) -> None:
    """Inflate a compressed tar for the inspection, a bounded piece at a time. Damage is
    handed on as a piece of its own, so the inspection meets it exactly where the
    stream broke (and names the member it was reading)."""
    reader = DecompressingReader(ChunkSource(pieces), compression)
    try:
        while inspect.error is None and (inflated := reader.read(PIECE)):
            inspect.feed(inflated)
    except DECOMPRESSION_ERRORS as damage:
        inspect.feed(damage)


def _spool(pieces: Iterator[bytes], spool: Path) -> None:
    """Keep a zip's plaintext in the intake folder, readable by this user only, to
    inspect it from its directory."""
    with open(os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        for piece in pieces:
            file.write(piece)


def _write_copy(pieces: Iterator[bytes], copy: Path) -> None:
    """The intake copy kept for build verification (readable by this user only), written
    past the page cache (vault.direct_io): nothing reads it before the build, so filling
    the cache with it would only cost CPU the other stages need. Not fsynced: a copy
    lost with the machine is a verification that restarts without it."""
    out = DirectWriter.open(copy, os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for piece in pieces:
            out.write(piece)
        out.finish()
    finally:
        out.close()


def _report(
    result: Any, archive_format: str, size: int, sha256: str, spool: Path, limits: ArchiveLimits
) -> ArchiveReport:
    if archive_format == "zip":
        return inspect_archive(spool, limits=limits, known_sha256=sha256)
    return report_of(result, archive_format=archive_format, size=size, sha256=sha256)
