"""The floor under a deposit's time: what the work a deposit must do costs on one core.

A deposit of a plain tar must hash the archive (its claimed SHA-256), hash every
member (the manifest lists each one's SHA-256, docs/design.md), encrypt it with
ChaCha20-Poly1305 (age), hash the ciphertext (the stored object's SHA-256, proven
again before ``replicated``), copy it into the site's aligned write buffers, and read
it from the socket; a .tar.gz must also inflate it, and its members to hash are the
inflated bytes. This module times each of those primitives alone, on one thread,
on the same inputs as ``deposit-upload`` (``bench.escrow_env``), and ``age -r`` on
the same files; it then adds them up. Divided by the machine's cores, that sum is the
shortest a deposit could take if every core did nothing but this work, and the best
ratio to ``age -r`` that any pipeline could reach here.

    .venv/bin/python -m bench.run --only work-floor
"""

from __future__ import annotations

import hashlib
import mmap
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.escrow_env import require_tools, write_tar, write_tar_gz
from bench.run import Section, format_size, machine_summary
from config.malloc import reuse_large_buffers

SECTION_ID = "work-floor"
TITLE = "The floor: what a deposit's work costs on one core"
PIECE = 512 * 1024
AGE_CHUNK = 64 * 1024
RUNS = 3
#: Deposit ratio targets of issue 13: plain tar, .tar.gz.
TARGETS = {"plain tar": 0.5, ".tar.gz": 0.3}


def _cpu(work: Callable[[], object]) -> float:
    """The median thread CPU seconds of ``work`` over RUNS runs."""
    seconds = []
    for _ in range(RUNS):
        started = time.thread_time()
        work()
        seconds.append(time.thread_time() - started)
    return statistics.median(seconds)


def _pieces(data: memoryview, size: int) -> list[memoryview]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def _sha256(data: memoryview) -> Callable[[], object]:
    def work() -> object:
        digest = hashlib.sha256()
        for piece in _pieces(data, PIECE):
            digest.update(piece)
        return digest.digest()

    return work


def _chacha(data: memoryview) -> Callable[[], object]:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    aead = ChaCha20Poly1305(os.urandom(32))

    def work() -> object:
        for index, chunk in enumerate(_pieces(data, AGE_CHUNK)):
            aead.encrypt(index.to_bytes(12, "big"), chunk, None)
        return None

    return work


def _copy_aligned(data: memoryview) -> Callable[[], object]:
    buffer = mmap.mmap(-1, 1024 * 1024)

    def work() -> object:
        for piece in _pieces(data, len(buffer)):
            buffer[: len(piece)] = piece
        return None

    return work


def _inflate(data: memoryview) -> Callable[[], object]:
    from isal import igzip_lib

    def work() -> object:
        inflater = igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP)
        position = 0
        inflated = 0
        while not inflater.eof:
            chunk = b""
            if inflater.needs_input:
                chunk = data[position : position + AGE_CHUNK]
                position += AGE_CHUNK
            inflated += len(inflater.decompress(chunk, PIECE))
        return inflated

    return work


def _socket_read(path: Path) -> float:
    """Receiving ``path`` over loopback TCP in PIECE reads: the receiving thread's CPU."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    sender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,sys\n"
            f"s=socket.create_connection(('127.0.0.1',{port}))\n"
            f"f=open({str(path)!r},'rb',buffering=0);b=bytearray(1<<20);v=memoryview(b)\n"
            "while (n:=f.readinto(b)): s.sendall(v[:n])\n"
            "s.close()\n",
        ]
    )
    connection, _ = server.accept()
    reader = connection.makefile("rb")
    started = time.thread_time()
    while reader.read(PIECE):
        pass
    seconds = time.thread_time() - started
    sender.wait()
    connection.close()
    server.close()
    return seconds


def _age_seconds(path: Path, workdir: Path) -> float:
    from vault.age import X25519Identity

    recipient = X25519Identity.generate().recipient().to_string()
    output = workdir / "floor.age"
    seconds = []
    for _ in range(RUNS):
        subprocess.run(["sync"], check=True)
        started = time.perf_counter()
        subprocess.run(["age", "-r", recipient, "-o", str(output), str(path)], check=True)
        seconds.append(time.perf_counter() - started)
        output.unlink()
    return statistics.median(seconds)


def run(*, size: int, workdir: Path) -> Section:
    require_tools()
    reuse_large_buffers()  # as the web worker does (config/wsgi.py)
    archive, archive_gz = workdir / "floor.tar", workdir / "floor.tar.gz"
    write_tar(archive, size)
    tar_gz = write_tar_gz(archive_gz, size)
    load_before = os.getloadavg()
    costs: dict[str, dict[str, float]] = {}
    ages: dict[str, float] = {}
    for kind, path in (("plain tar", archive), (".tar.gz", archive_gz)):
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
            data = memoryview(mapped)
            hash_seconds = _cpu(_sha256(data))
            step = {
                "read the body from the socket": _socket_read(path),
                "hash the archive (SHA-256)": hash_seconds,
                "encrypt (ChaCha20-Poly1305, 64 KiB chunks)": _cpu(_chacha(data)),
                "hash the ciphertext (SHA-256)": hash_seconds,
                "copy into the site's aligned buffers": _cpu(_copy_aligned(data)),
                "copy into the intake copy's aligned buffers": _cpu(_copy_aligned(data)),
            }
            if kind == ".tar.gz":
                step["inflate (ISA-L, 512 KiB at a time)"] = _cpu(_inflate(data))
                # The members are the inflated bytes: hashed at the rate just measured.
                step["hash every member (SHA-256 of the inflated tar)"] = (
                    hash_seconds * tar_gz.tar_size / len(data)
                )
            else:
                step["hash every member (SHA-256)"] = hash_seconds
            del data
        costs[kind] = step
        ages[kind] = _age_seconds(path, workdir)
    archive.unlink()
    archive_gz.unlink()
    body = _render(size, costs, ages, tar_gz.tar_size, (load_before, os.getloadavg()))
    return Section(SECTION_ID, TITLE, body)


def _render(
    size: int,
    costs: dict[str, dict[str, float]],
    ages: dict[str, float],
    tar_size: int,
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> str:
    cores = len(os.sched_getaffinity(0))
    kinds = list(costs)
    names = list(dict.fromkeys(name for kind in kinds for name in costs[kind]))
    lines = [
        f"Inputs as in `deposit-upload`: a {format_size(size)} plain tar, and a "
        f"{format_size(size)} .tar.gz holding a {tar_size / 1024**3:.2f} GiB tar. Each "
        f"primitive ran alone on one thread, {RUNS} times (median of the thread's CPU "
        "seconds), the input mapped from the page cache; the members' hashing of the "
        ".tar.gz is its inflated size at the measured SHA-256 rate. `age -r` is the "
        f"median wall time of {RUNS} runs, `sync` before each, as in `deposit-upload`.",
        "",
        "| CPU seconds of work, one core | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for name in names:
        cells = [f"{costs[kind][name]:.2f}" if name in costs[kind] else "-" for kind in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = {kind: sum(costs[kind].values()) for kind in kinds}
    lines.append("| **all the work** | " + " | ".join(f"**{totals[k]:.2f}**" for k in kinds) + " |")
    lines.append(
        f"| shortest possible wall time: all the work over {cores} cores, nothing else "
        "running | " + " | ".join(f"{totals[k] / cores:.2f}" for k in kinds) + " |"
    )
    age_cells = " | ".join(f"{ages[kind]:.2f}" for kind in kinds)
    lines.append(f"| `age -r` on the same file | {age_cells} |")
    lines.append(
        "| **best ratio to `age -r` any pipeline could reach here** | "
        + " | ".join(f"**{ages[k] / (totals[k] / cores):.2f}x**" for k in kinds)
        + " |"
    )
    lines.append("| issue 13's target | " + " | ".join(f">= {TARGETS[k]}x" for k in kinds) + " |")
    lines += [
        "",
        "Not counted, so the real floor is higher: the client sending the body runs on "
        "the same cores (about 0.4 CPU-seconds per GiB in `deposit-upload`), the kernel's "
        "work for the `O_DIRECT` writes, parsing tar headers, and handing pieces between "
        "threads.",
        "",
        *machine_summary(),
        "- Load average (1, 5, 15 min) before and after: "
        + "; ".join(", ".join(f"{value:.2f}" for value in load) for load in loads),
        "",
        "Reproduce: `.venv/bin/python -m bench.run --only work-floor --size 1GiB`.",
    ]
    return "\n".join(lines) + "\n"
