"""Writing a large file past the page cache, from aligned buffers, in a thread of its own.

Two files a deposit writes in its one pass are large and not read again soon: the
sealed object in a local site, and the plaintext intake copy kept for build
verification. Written the ordinary way, each gigabyte is first copied into the page
cache (about half a CPU-second here) and then written out again by the kernel's
flusher threads, which compete with the pass for the same cores, and the dirty
pages make any later fsync wait. Where the filesystem allows it, ``DirectWriter``
opens the file with ``O_DIRECT``: the bytes go from a page-aligned buffer straight to
the disk. While full buffers are written by the writer's own thread (``os.write``
releases the GIL), the caller fills the next one. The last, partial block is written
without ``O_DIRECT``. Where ``O_DIRECT`` is refused (tmpfs before Linux 6.6, for
one), the same writes are ordinary ones.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import queue
import threading
from pathlib import Path


class DirectWriter:
    """Writes to the file behind ``descriptor``, which it owns and closes.

    Errors met by the writing thread (a full disk, an I/O error) are raised, as the
    ``OSError`` they were, by the next ``write`` that needs a free buffer, or by
    ``finish``."""

    BLOCK = 1024 * 1024
    #: Buffers: one being filled while the others wait for, or are in, the disk.
    BUFFERS = 2

    def __init__(self, descriptor: int, *, direct: bool) -> None:
        self.descriptor: int | None = descriptor
        self.direct = direct
        # Page-aligned, as O_DIRECT requires.
        self._free: queue.Queue[mmap.mmap] = queue.Queue()
        for _ in range(self.BUFFERS):
            self._free.put(mmap.mmap(-1, self.BLOCK))
        self._buffers = list(self._free.queue)
        self._buffer: mmap.mmap | None = None
        self._full: queue.Queue[mmap.mmap | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._filled = 0
        self.written = 0
        self._error: OSError | None = None

    @classmethod
    def open(cls, path: Path, flags: int, mode: int = 0o600) -> DirectWriter:
        """Open ``path`` for writing with ``flags`` (``O_WRONLY`` and, say, ``O_CREAT |
        O_EXCL``), with ``O_DIRECT`` where the filesystem takes it."""
        flags |= os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        direct = getattr(os, "O_DIRECT", 0)
        if direct:
            try:
                return cls(os.open(path, flags | direct, mode), direct=True)
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
        return cls(os.open(path, flags, mode), direct=False)

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        if self.descriptor is None:
            raise ValueError("write to a closed DirectWriter")
        view = memoryview(data)
        while view:
            if self._buffer is None:
                self._buffer = self._free.get()  # waits while every one is being written
                if self._error is not None:
                    raise self._error
            taken = min(len(view), self.BLOCK - self._filled)
            self._buffer[self._filled : self._filled + taken] = view[:taken]
            self._filled += taken
            view = view[taken:]
            if self._filled == self.BLOCK:
                self._hand_over()

    def finish(self) -> int:
        """Write everything still buffered and return the file's size. The descriptor
        stays open (for an fsync, say) until ``close``."""
        self._settle()
        if self._filled:
            self._write_tail()
        return self.written

    def close(self) -> None:
        """Stop writing (what is still buffered is dropped), close the file, free the
        buffers. Safe to call more than once; never raises."""
        with contextlib.suppress(OSError):
            self._settle()
        if self.descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(self.descriptor)
            self.descriptor = None
        for buffer in self._buffers:
            with contextlib.suppress(BufferError):
                buffer.close()

    def _hand_over(self) -> None:
        """Queue the full buffer for the writing thread and go on with the other."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._write_out, name="direct-write", daemon=True
            )
            self._thread.start()
        self._full.put(self._buffer)
        self._buffer = None
        self._filled = 0

    def _write_out(self) -> None:
        """The writing thread: each full buffer to the disk, then back to the free ones."""
        while (buffer := self._full.get()) is not None:
            try:
                if self._error is None:
                    self._write_all(memoryview(buffer))
            except OSError as error:
                self._error = error
            finally:
                self._free.put(buffer)  # never lost, so the filling side never waits forever

    def _settle(self) -> None:
        """Wait until every full buffer is written; raise what the writing met."""
        if self._thread is not None:
            self._full.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def _write_all(self, view: memoryview) -> None:
        assert self.descriptor is not None
        while view:
            count = os.write(self.descriptor, view)
            view = view[count:]
            self.written += count

    def _write_tail(self) -> None:
        """The last, partial block: not a multiple of the disk's block, so no O_DIRECT."""
        assert self.descriptor is not None and self._buffer is not None
        if self.direct:
            flags = fcntl.fcntl(self.descriptor, fcntl.F_GETFL)
            fcntl.fcntl(self.descriptor, fcntl.F_SETFL, flags & ~os.O_DIRECT)
            self.direct = False
        self._write_all(memoryview(self._buffer)[: self._filled])
        self._filled = 0
