"""A throwaway escrow installation served by gunicorn, and the archives deposited to it.

The driver side (imported by ``bench.deposit_upload`` and ``bench.upload_memory``)
never imports Django: the app runs in child processes with their own
``ESCROW_VAR_DIR``, so the numbers are those processes' own and the
developer's ``var/`` is never touched. The installation is the embedded
default: SQLite, tasks in-process, the two local storage sites (primary and
replica) that ``config/storage_sites.py`` gives without ``ESCROW_SITES``, and
``LOG_LEVEL`` unset (INFO), so the worker's log carries the intake's
``one-pass timings`` line. The one child command is this module as a script:

    python -m bench.escrow_env setup RECIPIENT   # product, notary recipient, token (JSON out)

``WebServer`` runs ``gunicorn config.wsgi:application --workers 1`` (the sync
worker) against the installation; ``WebServer.put`` sends an archive over
loopback with ``http.client`` and measures the request: wall time, each
core's busy share (``/proc/stat``), the worker's and the client's CPU seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from bench.age_throughput import TIME
from bench.run import REPO

#: The one product every benchmark deposits to.
PRODUCT_SLUG = "bench-product"
_WRITE_BLOCK = 4 * 1024 * 1024
#: Each plain-tar member is about this big, up to MAX_MEMBERS members.
_MEMBER_BYTES = 4 * 1024 * 1024
_MAX_MEMBERS = 400
#: Bytes a "text" member of a plain tar is made of: source-like ASCII, but still
#: incompressible because the choice of character comes from a cipher stream.
_TEXT_ALPHABET = b"abcdefghijklmnopqrstuvwxyz_ABCDEF0123456789    ().,:=\n\n\n"
_TEXT_TABLE = bytes(_TEXT_ALPHABET[i % len(_TEXT_ALPHABET)] for i in range(256))
#: The .tar.gz's text members are made of pages of source-like text this big,
#: drawn from PAGES distinct ones, each deflated once (see ``write_tar_gz``).
_PAGE_BYTES = 128 * 1024
_PAGES = 64
#: gzip's default level, as ``tar czf`` and ``gzip`` use.
_GZIP_LEVEL = 6
#: One .tar.gz member in this many is binary (incompressible); the rest are text.
_GZ_BINARY_EVERY = 16
#: gzip's fixed 10-byte header: deflate, no name, no mtime, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

#: Deposit states after which the worker does nothing more for the deposit.
SETTLED_STATES = ("replicated", "acknowledged", "rejected", "failed")
#: Build verification states in which the worker may still be working on it after the
#: answer (reading its intake copy, building).
OPEN_VERIFICATION_STATES = ("pending", "running")
#: The marker of the intake's per-deposit log line, followed by one JSON object.
TIMINGS_MARKER = "one-pass timings"
#: The client sends the archive in reads this big.
CHUNK = 1024 * 1024
#: How long the server may take to start and answer its first request.
STARTUP_SECONDS = 60
#: gunicorn's own worker timeout; a request must finish well within it.
WORKER_TIMEOUT_SECONDS = 600
#: How long a stored deposit may take to be replicated after the answer.
SETTLE_SECONDS = 900


@dataclass(frozen=True)
class EscrowEnv:
    """One throwaway installation: its environment, token and notary key."""

    var_dir: Path
    env: dict[str, str]
    token: str
    recipient: str
    identity: Path

    @property
    def site_folders(self) -> tuple[Path, ...]:
        """The embedded default's two local sites, primary first."""
        return (self.var_dir / "vault" / "primary", self.var_dir / "vault" / "replica")

    def clear_sites(self) -> None:
        """Remove every stored object, so repeated deposits do not fill the disk."""
        for folder in self.site_folders:
            if folder.exists():
                shutil.rmtree(folder, onerror=_make_writable_and_retry)
            folder.mkdir(parents=True)


def _make_writable_and_retry(function: Callable[[str], Any], path: str, _exc_info: object) -> None:
    # Sites make stored objects read-only; their folders may be too.
    os.chmod(Path(path).parent, 0o755)
    function(path)


def create(workdir: Path) -> EscrowEnv:
    """Migrate a fresh SQLite database under ``workdir`` and add what a deposit needs."""
    var_dir = workdir / "var"
    var_dir.mkdir(parents=True)
    env = child_environment(var_dir)
    identity = workdir / "notary-key.txt"
    subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
    recipient = output_of(["age-keygen", "-y", identity])
    manage = [sys.executable, "manage.py"]
    _run_checked([*manage, "migrate", "--no-input", "--verbosity", "0"], env=env)
    setup = json.loads(
        _run_checked([sys.executable, "-m", "bench.escrow_env", "setup", recipient], env=env)
    )
    return EscrowEnv(
        var_dir=var_dir, env=env, token=setup["token"], recipient=recipient, identity=identity
    )


def child_environment(var_dir: Path) -> dict[str, str]:
    """This process's environment without anything that configures the app, plus
    ``ESCROW_VAR_DIR``: the embedded default is what gets measured, whatever a
    developer's shell points at (a DATABASE_URL, a broker, a site list, a log level)."""
    dropped = ("ESCROW_", "DATABASE_", "CELERY_", "DJANGO_", "AGE_", "LOG_LEVEL")
    env = {name: value for name, value in os.environ.items() if not name.startswith(dropped)}
    env["ESCROW_VAR_DIR"] = str(var_dir)
    return env


# --- Archives ---------------------------------------------------------------------


def write_tar(path: Path, size: int) -> str:
    """Write a plain tar of exactly ``size`` bytes; return its SHA-256.

    A few hundred members, one in four "text" (source-like ASCII) and the rest
    binary, all from a ChaCha20 key stream: incompressible, generated far faster
    than ``os.urandom`` and never held in memory (4 MiB blocks). The archive is
    headers, contents and the end marker, then zero padding up to ``size``,
    which tar readers (and the app's inspection) accept after the end marker.
    """
    members = max(1, min(_MAX_MEMBERS, size // _MEMBER_BYTES))
    overhead = members * tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE
    if size < overhead:
        raise ValueError(f"{size} bytes is too small for a tar of {members} members")
    sizes = _member_sizes(members, (size - overhead) // tarfile.BLOCKSIZE)
    stream = _KeyStream()
    digest = hashlib.sha256()
    written = 0
    with path.open("wb") as file:

        def emit(data: bytes) -> None:
            nonlocal written
            digest.update(data)
            file.write(data)
            written += len(data)

        for index, member_size in enumerate(sizes):
            text = index % 4 == 0
            emit(_tar_header(index, member_size, text=text))
            remaining = member_size
            while remaining:
                block = stream.read(min(_WRITE_BLOCK, remaining))
                emit(block.translate(_TEXT_TABLE) if text else block)
                remaining -= len(block)
        # The end marker, then padding: zeros all the way to the requested size.
        while written < size:
            emit(bytes(min(_WRITE_BLOCK, size - written)))
    return digest.hexdigest()


def _tar_header(index: int, size: int, *, text: bool) -> bytes:
    name = f"release/src/module_{index:04d}.py" if text else f"release/assets/blob_{index:04d}.bin"
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 1_700_000_000
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _member_sizes(members: int, blocks: int) -> list[int]:
    """Split ``blocks`` 512-byte blocks over the members, unevenly but reproducibly."""
    weights = [random.Random(index).uniform(0.25, 1.75) for index in range(members)]
    total = sum(weights)
    counts = [int(blocks * weight / total) for weight in weights]
    counts[-1] += blocks - sum(counts)
    return [count * tarfile.BLOCKSIZE for count in counts]


class _KeyStream:
    """Incompressible bytes from a ChaCha20 key stream (~4 GB/s, against ~0.3 GB/s
    for ``os.urandom`` here), so building a 4 GiB archive does not dominate the run."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        key, nonce = os.urandom(32), os.urandom(16)
        self._cipher = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
        self._zeros = bytes(_WRITE_BLOCK)

    def read(self, size: int) -> bytes:
        return self._cipher.update(self._zeros[:size])


@dataclass(frozen=True)
class TarGz:
    """A .tar.gz written by ``write_tar_gz``."""

    sha256: str
    #: The .tar.gz file's size.
    size: int
    #: The size of the tar inside it.
    tar_size: int

    @property
    def ratio(self) -> float:
        """How many times smaller gzip made the tar."""
        return self.tar_size / self.size


def write_tar_gz(path: Path, size: int) -> TarGz:
    """Write a gzip-compressed tar whose file is ``size`` bytes or a little less.

    Like a release's source: mostly source-like text (lines of identifiers,
    operators and indentation), one member in _GZ_BINARY_EVERY binary
    (incompressible). Deflating 3-5 GiB of text at gzip's default level would
    take minutes, so the text is made of _PAGES distinct pages, each deflated
    once and spliced in as often as it occurs: every deflate segment ends with
    a full flush (byte-aligned, no reference to earlier data), which makes the
    segments' concatenation one valid gzip stream, inflated at the same cost as
    any other (gzip's 32 KiB window never reaches across a page anyway). Binary
    members go in as stored blocks, as gzip stores incompressible data.
    """
    rng = random.Random(20_260_101)
    pages = [_DeflatedPage(_source_like_text(rng, _PAGE_BYTES)) for _ in range(_PAGES)]
    # Room left for the last header, the end marker and the gzip trailer.
    reserve = 4096
    stream = _KeyStream()
    with path.open("wb") as file:
        gzip = _GzipWriter(file)
        index = 0
        while True:
            room = size - reserve - gzip.written
            if index % _GZ_BINARY_EVERY == _GZ_BINARY_EVERY - 1:
                wanted = rng.randint(1, 8) * 512 * 1024
                member_size = min(wanted, room - room // 1000) // tarfile.BLOCKSIZE * 512
                if member_size <= 0:
                    break
                gzip.add(_tar_header(index, member_size, text=False), _GZIP_LEVEL)
                _add_binary(gzip, stream, member_size)
            else:
                chosen = _pages_that_fit(pages, rng, rng.randint(4, 48), room)
                if not chosen:
                    break
                gzip.add(_tar_header(index, len(chosen) * _PAGE_BYTES, text=True), _GZIP_LEVEL)
                for page in chosen:
                    gzip.add_deflated(page.plain, page.deflated)
            index += 1
        gzip.add(_tar_end(gzip.plain_size), _GZIP_LEVEL)
        gzip.close()
    return TarGz(sha256=gzip.digest.hexdigest(), size=gzip.written, tar_size=gzip.plain_size)


def _pages_that_fit(
    pages: list[_DeflatedPage], rng: random.Random, count: int, room: int
) -> list[_DeflatedPage]:
    """Up to ``count`` pages drawn at random whose deflated size fits in ``room`` bytes."""
    chosen: list[_DeflatedPage] = []
    for _ in range(count):
        page = pages[rng.randrange(len(pages))]
        if len(page.deflated) + tarfile.BLOCKSIZE > room:
            break
        room -= len(page.deflated)
        chosen.append(page)
    return chosen


def _add_binary(gzip: _GzipWriter, stream: _KeyStream, size: int) -> None:
    remaining = size
    while remaining:
        block = stream.read(min(_WRITE_BLOCK, remaining))
        gzip.add(block, 0)
        remaining -= len(block)


def _tar_end(tar_size: int) -> bytes:
    """The end marker (two zero blocks), padded to a whole record as ``tarfile`` does."""
    end = tar_size + 2 * tarfile.BLOCKSIZE
    return bytes(2 * tarfile.BLOCKSIZE + (-end % tarfile.RECORDSIZE))


#: Words the source-like text is made of, with identifiers joined from two of them.
_VOCABULARY = (
    "def class return self import from for in if else elif while try except finally with "
    "as yield lambda None True False and or not is value result items index count data "
    "buffer path name config request response error message logger stream chunk digest "
    "archive member deposit version token size len range print append update get set "
    "open read write close flush sync seal store check inspect"
)
_WORDS = _VOCABULARY.split()
_OPERATORS = (" = ", "(", ")", ", ", ".", " + ", " == ", ": ", "[", "]", " # ")


def _source_like_text(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of lines that look like source code: it deflates about 4x."""
    identifiers = [f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}" for _ in range(300)] + _WORDS
    lines: list[str] = []
    length = 0
    while length < size:
        indent = "    " * rng.randrange(4)
        tokens = rng.randrange(2, 9)
        line = (
            indent
            + "".join(rng.choice(identifiers) + rng.choice(_OPERATORS) for _ in range(tokens))
            + "\n"
        )
        lines.append(line)
        length += len(line)
    return "".join(lines).encode()[: size - 1] + b"\n"


class _DeflatedPage:
    """A page of text and its raw deflate segment (see ``_deflate``)."""

    def __init__(self, plain: bytes) -> None:
        self.plain = plain
        self.deflated = _deflate(plain, _GZIP_LEVEL)


def _deflate(data: bytes, level: int) -> bytes:
    """A raw deflate segment ending in a full flush: byte-aligned, not final, and
    referring to nothing before it, so segments can be concatenated."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


class _GzipWriter:
    """One gzip member written segment by segment: header, deflate segments, the
    final empty block, then the CRC-32 and length of everything deflated."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.digest = hashlib.sha256()
        self.written = 0
        self.plain_size = 0
        self._crc = 0
        self._emit(_GZIP_HEADER)

    def add(self, plain: bytes, level: int) -> None:
        """Deflate ``plain`` at ``level`` (0 stores it) and append it."""
        self.add_deflated(plain, _deflate(plain, level))

    def add_deflated(self, plain: bytes, deflated: bytes) -> None:
        """Append ``deflated``, a ``_deflate`` segment of ``plain``."""
        self._crc = zlib.crc32(plain, self._crc)
        self.plain_size += len(plain)
        self._emit(deflated)

    def close(self) -> None:
        final = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
        self._emit(final + struct.pack("<II", self._crc, self.plain_size & 0xFFFFFFFF))

    def _emit(self, data: bytes) -> None:
        self.digest.update(data)
        self.file.write(data)
        self.written += len(data)


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_WRITE_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# --- The app served by gunicorn -----------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One PUT of an archive, as the client measured it."""

    status: int
    answer: dict[str, Any]
    #: From the first byte of the request sent to the last byte of the answer read.
    seconds: float
    #: Each core's busy share of the request's wall time (user, system, irq, steal).
    core_busy: tuple[float, ...]
    #: Each core's share spent idle waiting for the disk.
    core_iowait: tuple[float, ...]
    #: The worker's user + system CPU seconds during the request.
    worker_cpu_seconds: float
    #: The client's (this driver's) user + system CPU seconds during the request.
    client_cpu_seconds: float
    #: Where the server's log ended when the request began.
    log_offset: int

    @property
    def deposit_id(self) -> int:
        return int(self.answer.get("id") or 0)

    @property
    def state(self) -> str:
        return str(self.answer.get("state", ""))

    @property
    def problem(self) -> str:
        return str(self.answer.get("problem") or self.answer.get("detail") or "")


class WebServer:
    """``gunicorn config.wsgi:application --workers 1`` (sync worker) serving ``escrow``
    on a free loopback port, its output in ``logs``; started on ``with``, stopped after.

    Everything the worker writes (gunicorn's messages and the app's log, whose root
    logger prints to standard error) goes to ``logs``, read back for the intake's
    ``one-pass timings`` line."""

    def __init__(
        self,
        escrow: EscrowEnv,
        logs: Path,
        *,
        server: str = "gunicorn",
        settings: dict[str, str] | None = None,
    ) -> None:
        """``server`` is ``gunicorn`` (as in production) or ``runserver`` (as ``make run``
        serves the embedded default: Django's development server, one process).
        ``settings`` are environment variables set for the server on top of the
        installation's (say ``ESCROW_VERIFY_ENABLED``)."""
        self.escrow = escrow
        self.settings = dict(settings or {})
        self.logs = logs
        self.server = server
        self.port = _free_port()
        self.worker = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        """The server's command line."""
        if self.server == "runserver":
            return [
                sys.executable,
                "manage.py",
                "runserver",
                "--noreload",
                f"127.0.0.1:{self.port}",
            ]
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "-b",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--timeout",
            str(WORKER_TIMEOUT_SECONDS),
            "--error-logfile",
            str(self.logs),
            "--access-logfile",
            str(self.logs),
        ]

    def __enter__(self) -> WebServer:
        with self.logs.open("ab") as output:
            self._process = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=self.escrow.env | self.settings,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        try:
            self.worker = self._wait_until_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop()

    @property
    def master(self) -> int:
        """The gunicorn master's pid."""
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def _stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _wait_until_ready(self) -> int:
        """Wait until the worker answers an API request (app loaded, URLs and DRF
        imported); return the worker's pid."""
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited ({self._process.returncode}):\n{self.log_tail()}"
                )
            try:
                # No deposit 0 exists: a 404 from the view proves the whole stack answered.
                status, _answer = self._request("GET", "/api/v1/deposits/0", timeout=10)
            except OSError:
                time.sleep(0.2)
                continue
            if status != 404:
                raise RuntimeError(f"the warm-up request answered {status}; see {self.logs}")
            if self.server == "runserver":
                return self.master  # one process: the server is the worker
            workers = _children(self.master)
            if len(workers) != 1:
                raise RuntimeError(f"expected one gunicorn worker, found {workers}")
            return workers[0]
        raise RuntimeError(f"gunicorn did not answer within {STARTUP_SECONDS} s; see {self.logs}")

    def _request(
        self, method: str, path: str, *, timeout: float = WORKER_TIMEOUT_SECONDS
    ) -> tuple[int, dict[str, Any]]:
        """A small request with the token; a sync worker still busy with a deposit
        answers it only when done, hence the long default timeout."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(
                method, path, headers={"Authorization": f"Bearer {self.escrow.token}"}
            )
            response = connection.getresponse()
            return response.status, _json_answer(response.read())
        finally:
            connection.close()

    def put(self, archive: Path, *, version: str, sha256: str) -> Upload:
        """PUT ``archive`` as the raw body with Content-Length and X-Archive-SHA256.

        Dirty pages are flushed first (``sync``), the connection is open before
        the clock starts, and the clock stops once the answer is read. The file is
        sent from one reused CHUNK buffer, so the client's memory stays flat."""
        self.check_worker()
        log_offset = self.logs.stat().st_size
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=WORKER_TIMEOUT_SECONDS
        )
        os.sync()
        connection.connect()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with archive.open("rb", buffering=0) as file:
            cores_before = cpu_times_per_core()
            worker_before = process_cpu_seconds(self.worker)
            client_before = _own_cpu_seconds()
            started = time.perf_counter()
            connection.putrequest("PUT", f"/api/v1/products/{PRODUCT_SLUG}/deposits/{version}")
            connection.putheader("Authorization", f"Bearer {self.escrow.token}")
            connection.putheader("Content-Type", "application/octet-stream")
            connection.putheader("Content-Length", str(archive.stat().st_size))
            connection.putheader("X-Archive-SHA256", sha256)
            connection.putheader("X-Pipeline-Commit", "bench")
            connection.endheaders()
            try:
                while count := file.readinto(buffer):
                    connection.send(view[:count])  # socket.sendall underneath
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early (an error); its answer says why
            response = connection.getresponse()
            body = response.read()
            seconds = time.perf_counter() - started
            client_after = _own_cpu_seconds()
            worker_after = process_cpu_seconds(self.worker)
            cores_after = cpu_times_per_core()
        connection.close()
        busy, iowait = _core_shares(cores_before, cores_after)
        return Upload(
            status=response.status,
            answer=_json_answer(body),
            seconds=seconds,
            core_busy=busy,
            core_iowait=iowait,
            worker_cpu_seconds=worker_after - worker_before,
            client_cpu_seconds=client_after - client_before,
            log_offset=log_offset,
        )

    def wait_settled(self, deposit_id: int) -> tuple[str, float]:
        """Poll the deposit until the worker is done with it (replicated, or
        failed, and its build verification, if any, ended): what it still does after
        the answer must not run into the next measurement. Return the deposit's state
        and the seconds waited."""
        started = time.perf_counter()
        deadline = time.monotonic() + SETTLE_SECONDS
        state = ""
        while time.monotonic() < deadline:
            status, answer = self._request("GET", f"/api/v1/deposits/{deposit_id}")
            state = str(answer.get("state", ""))
            if status != 200:
                raise RuntimeError(f"deposit {deposit_id} answered {status}: {answer}")
            verification = answer.get("verification") or {}
            if (
                state in SETTLED_STATES
                and verification.get("state") not in OPEN_VERIFICATION_STATES
            ):
                return state, time.perf_counter() - started
            time.sleep(0.2)
        raise RuntimeError(f"deposit {deposit_id} still {state!r} after {SETTLE_SECONDS} s")

    def check_worker(self) -> None:
        """Fail when the worker was replaced (killed by its timeout, crashed):
        its numbers would be another process's."""
        if self.server == "runserver":
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"runserver exited; see {self.logs}")
            return
        if self.worker not in _children(self.master):
            raise RuntimeError(f"worker {self.worker} was replaced; see {self.logs}")

    def worker_kib(self, name: str) -> int:
        """A ``kB`` field (VmRSS, VmHWM) of the worker's ``/proc/<pid>/status``."""
        return proc_status_kib(self.worker, name)

    def log_since(self, offset: int) -> str:
        """What the server logged from byte ``offset`` on."""
        with self.logs.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")

    def log_tail(self) -> str:
        return self.logs.read_text(errors="replace")[-3000:]


def _json_answer(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        return {"detail": body[:500].decode(errors="replace")}
    return answer if isinstance(answer, dict) else {"detail": str(answer)[:500]}


def one_pass_timings(log_text: str, deposit_id: int) -> dict[str, Any] | None:
    """The JSON object of the intake's ``one-pass timings`` line for ``deposit_id``
    (the last such line if it names no deposit), or None when none was logged."""
    found: dict[str, Any] | None = None
    decoder = json.JSONDecoder()
    for line in log_text.splitlines():
        marker = line.find(TIMINGS_MARKER)
        if marker < 0:
            continue
        start = line.find("{", marker)
        try:
            timings, _end = decoder.raw_decode(line, start) if start >= 0 else (None, 0)
        except ValueError:
            continue
        if not isinstance(timings, dict):
            continue
        if timings.get("deposit", deposit_id) == deposit_id:
            found = timings
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the gunicorn master's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        if int(_stat_fields(stat)[1]) == pid:
            found.append(int(entry.name))
    return found


# --- CPU and memory from /proc ------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(stat: str) -> list[str]:
    """The fields of a ``/proc/<pid>/stat`` line after the command name, which sits in
    parentheses and may hold spaces: [0] is the state (field 3), [1] the parent."""
    return stat.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from ``/proc/<pid>/stat``."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat").read_text())
    # utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def cpu_times_per_core() -> list[list[int]]:
    """Each core's ``/proc/stat`` counters (user nice system idle iowait irq softirq steal),
    in clock ticks."""
    cores = []
    for line in Path("/proc/stat").read_text().splitlines():
        name, *counters = line.split()
        if name.startswith("cpu") and name != "cpu":
            cores.append([int(value) for value in counters[:8]])
    return cores


def _core_shares(
    before: list[list[int]], after: list[list[int]]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each core's busy and iowait shares of the ticks between two samples."""
    busy, iowait = [], []
    for old, new in zip(before, after, strict=True):
        delta = [end - start for start, end in zip(old, new, strict=True)]
        total = sum(delta) or 1
        idle, waiting = delta[3], delta[4]
        busy.append((total - idle - waiting) / total)
        iowait.append(waiting / total)
    return tuple(busy), tuple(iowait)


def proc_status_kib(pid: int | str, name: str) -> int:
    """A ``kB`` field (VmRSS, VmHWM) of ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.split()[0])
    raise KeyError(f"/proc/{pid}/status has no {name}")


# --- Small shared helpers -----------------------------------------------------------


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, to show how busy the machine was."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def require_tools() -> None:
    """Fail early, with the reason, when a needed tool is missing."""
    if not os.access(TIME, os.X_OK):
        raise RuntimeError(f"{TIME} is needed to measure peak RSS (Debian package `time`)")
    for tool in ("age", "age-keygen"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the `{tool}` tool is needed (Debian package `age`)")


def output_of(argv: list[str | Path]) -> str:
    """Standard output (or error) of a short command, stripped."""
    result = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, check=True)
    return (result.stdout or result.stderr).strip()


def _run_checked(argv: list[str], *, env: dict[str, str]) -> str:
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def log(message: str) -> None:
    """Progress on standard error, in the driver's indentation."""
    print(f"   {message}", file=sys.stderr, flush=True)


# --- The child side: runs inside the throwaway installation ------------------------


def _setup_main(recipient: str) -> None:
    """Add the product, the notary's recipient and a deposit token; print the token."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from accounts.models import Organisation, Product, User
    from escrow.models import NotaryRecipient
    from escrow.services.tokens import token_create
    from vault.keys import system_signing_key

    vendor = Organisation.objects.create(
        name="Bench Vendor",
        kind=Organisation.Kind.VENDOR,
        country="NL",
        contact_email="vendor@example.com",
    )
    product = Product.objects.create(vendor=vendor, name="Bench product", slug=PRODUCT_SLUG)
    notary = User.objects.create_user(
        "notary@example.com", None, full_name="Bench Notary", role="notary"
    )
    NotaryRecipient.objects.create(notary=notary, label="bench", public_key=recipient)
    system_signing_key()  # generated once here, not during a timed deposit
    issued = token_create(product=product, label="bench", actor=None)
    print(json.dumps({"token": issued.secret}))


def _child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.escrow_env")
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="add the product, notary key and token")
    setup.add_argument("recipient")
    options = parser.parse_args(argv)
    _setup_main(options.recipient)


if __name__ == "__main__":
    _child_main()


def check_sealed(escrow: EscrowEnv, expected_sha256: str, workdir: Path) -> None:
    """The largest object in the primary site must be the archive sealed to the notary:
    open it with the real ``age`` tool and compare, or the run's time means nothing."""
    objects = [path for path in escrow.site_folders[0].rglob("*") if path.is_file()]
    if not objects:
        raise RuntimeError(f"nothing was stored in {escrow.site_folders[0]}")
    sealed = max(objects, key=lambda path: path.stat().st_size)
    opened = workdir / "opened"
    output_of(["age", "-d", "-i", escrow.identity, "-o", opened, sealed])
    try:
        if sha256_of(opened) != expected_sha256:
            raise RuntimeError(f"{sealed} does not decrypt to the deposited archive")
    finally:
        opened.unlink()
