"""Peak memory of the app server's worker while it takes a ``--size`` deposit over HTTP.

The real server (``gunicorn config.wsgi:application``, one sync worker) runs
in a child process against a throwaway installation (SQLite, tasks
in-process, the embedded default of two local sites, so the worker also
replicates before it answers). A ``--size`` plain tar is PUT over loopback
with ``http.client``, streamed from the file in CHUNK reads with
Content-Length, X-Archive-SHA256 and the Bearer token; the answer must be 202
with the deposit stored or replicated. The worker (the gunicorn master's
child) reports its own peak in ``/proc/<pid>/status`` ``VmHWM``: read once the
app is loaded and has answered a first request (the baseline), and after the
upload. The target is at most TARGET_MIB.

    .venv/bin/python -m bench.upload_memory --size 1GiB       # this section only
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.escrow_env import (
    PRODUCT_SLUG,
    EscrowEnv,
    create,
    load_average,
    log,
    output_of,
    proc_status_kib,
    require_tools,
    write_tar,
)
from bench.run import REPO, Section, format_size, machine_summary

SECTION_ID = "web-upload-rss"
TITLE = "Web upload peak RSS"
TARGET_MIB = 150
CHUNK = 1024 * 1024
#: How long the server may take to start and answer its first request.
STARTUP_SECONDS = 60
#: gunicorn's own worker timeout; the upload must finish well within it.
WORKER_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Upload:
    """What one upload measured."""

    status: int
    state: str
    problem: str
    seconds: float
    worker_baseline_rss_kib: int
    worker_baseline_hwm_kib: int
    worker_peak_hwm_kib: int
    worker_after_rss_kib: int
    master_peak_hwm_kib: int
    client_peak_hwm_kib: int


def run(*, size: int, workdir: Path) -> Section:
    """PUT a ``size``-byte plain tar to a gunicorn worker and measure its peak RSS."""
    require_tools()
    load_before = load_average()
    log("setting up a throwaway installation (the default two local sites)")
    escrow = create(workdir / "installation", single_site=False)
    archive = workdir / "archive.tar"
    log(f"writing a {format_size(size)} plain tar")
    sha256 = write_tar(archive, size)
    logs = workdir / "gunicorn.log"
    log("starting gunicorn")
    upload = _measure(escrow, archive, sha256, logs)
    archive.unlink()
    escrow.clear_sites()
    if upload.status != 202 or upload.state not in ("stored", "replicated"):
        raise RuntimeError(
            f"the upload answered {upload.status} with state {upload.state!r} "
            f"({upload.problem}); gunicorn's log:\n{logs.read_text()[-3000:]}"
        )
    gunicorn = output_of([sys.executable, "-m", "gunicorn", "--version"])
    return Section(
        SECTION_ID,
        TITLE,
        _render(size, upload, escrow, gunicorn, (load_before, load_average())),
    )


def _measure(escrow: EscrowEnv, archive: Path, sha256: str, logs: Path) -> Upload:
    port = _free_port()
    env = escrow.env | {"DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_DEBUG": "false"}
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "-b",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--timeout",
        str(WORKER_TIMEOUT_SECONDS),
        "--error-logfile",
        str(logs),
        "--access-logfile",
        str(logs),
    ]
    with logs.open("ab") as output:
        # The app logs to standard error too (a 404 warning for the warm-up request).
        server = subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    try:
        worker = _wait_until_ready(server, port, escrow.token, logs)
        baseline_rss = proc_status_kib(worker, "VmRSS")
        baseline_hwm = proc_status_kib(worker, "VmHWM")
        os.sync()  # no earlier writes flushed during the upload
        log(f"PUT {format_size(archive.stat().st_size)} to worker {worker}")
        started = time.perf_counter()
        status, answer = _put(port, escrow.token, archive, sha256)
        seconds = time.perf_counter() - started
        if worker not in _children(server.pid):
            raise RuntimeError(f"worker {worker} was replaced during the upload; see {logs}")
        peak_hwm = proc_status_kib(worker, "VmHWM")
        after_rss = proc_status_kib(worker, "VmRSS")
        master_hwm = proc_status_kib(server.pid, "VmHWM")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return Upload(
        status=status,
        state=str(answer.get("state", "")),
        problem=str(answer.get("problem") or answer.get("detail") or ""),
        seconds=seconds,
        worker_baseline_rss_kib=baseline_rss,
        worker_baseline_hwm_kib=baseline_hwm,
        worker_peak_hwm_kib=peak_hwm,
        worker_after_rss_kib=after_rss,
        master_peak_hwm_kib=master_hwm,
        client_peak_hwm_kib=proc_status_kib("self", "VmHWM"),
    )


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
        # The command name in parentheses may hold spaces; the fields after it do not.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append(int(entry.name))
    return found


def _wait_until_ready(server: subprocess.Popen[bytes], port: int, token: str, logs: Path) -> int:
    """Wait until the worker answers an API request (app loaded, URLs and DRF imported);
    return the worker's pid."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({server.returncode}):\n{logs.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            # No deposit 0 exists: a 404 from the view proves the whole stack answered.
            connection.request(
                "GET", "/api/v1/deposits/0", headers={"Authorization": f"Bearer {token}"}
            )
            status = connection.getresponse().status
            connection.close()
        except OSError:
            time.sleep(0.2)
            continue
        if status != 404:
            raise RuntimeError(f"the warm-up request answered {status}; see {logs}")
        workers = _children(server.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        return workers[0]
    raise RuntimeError(f"gunicorn did not answer within {STARTUP_SECONDS} s; see {logs}")


def _put(port: int, token: str, archive: Path, sha256: str) -> tuple[int, dict[str, object]]:
    """PUT ``archive`` as the raw body, read from disk CHUNK bytes at a time."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WORKER_TIMEOUT_SECONDS)
    connection.putrequest("PUT", f"/api/v1/products/{PRODUCT_SLUG}/deposits/4.0.0")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Content-Length", str(archive.stat().st_size))
    connection.putheader("X-Archive-SHA256", sha256)
    connection.putheader("X-Pipeline-Commit", "bench")
    connection.endheaders()
    try:
        with archive.open("rb") as file:
            while chunk := file.read(CHUNK):
                connection.send(chunk)  # socket.sendall underneath
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered early (an error); its answer says why
    response = connection.getresponse()
    body = response.read()
    connection.close()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {"detail": body[:500].decode(errors="replace")}
    return response.status, answer


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def _render(
    size: int, upload: Upload, escrow: EscrowEnv, gunicorn: str, loads: tuple[str, str]
) -> str:
    within = upload.worker_peak_hwm_kib <= TARGET_MIB * 1024
    verdict = "met" if within else "**not met**"
    rows = [
        "| Measure | Value |",
        "|---|---:|",
        f"| Answer | {upload.status}, state `{upload.state}` |",
        f"| Request wall time (PUT sent to answer read) | {upload.seconds:.1f} s |",
        f"| Archive throughput | {size / upload.seconds / 1e6:,.0f} MB/s |",
        f"| Worker VmRSS after start-up and a first request (baseline) | "
        f"{_mib(upload.worker_baseline_rss_kib)} |",
        f"| Worker VmHWM before the upload | {_mib(upload.worker_baseline_hwm_kib)} |",
        f"| **Worker VmHWM after the upload (peak)** | **{_mib(upload.worker_peak_hwm_kib)}** |",
        f"| Added by the upload (peak minus baseline) | "
        f"{_mib(upload.worker_peak_hwm_kib - upload.worker_baseline_rss_kib)} |",
        f"| Worker VmRSS after the upload | {_mib(upload.worker_after_rss_kib)} |",
        f"| gunicorn master VmHWM | {_mib(upload.master_peak_hwm_kib)} |",
        f"| Client side: the benchmark driver's own VmHWM | {_mib(upload.client_peak_hwm_kib)} |",
    ]
    size_argument = format_size(size).replace(" ", "")
    lines = [
        f"One PUT of a {format_size(size)} plain tar (a few hundred incompressible members) "
        f"over loopback to `gunicorn config.wsgi:application --workers 1 --timeout "
        f"{WORKER_TIMEOUT_SECONDS}` (sync worker, `DJANGO_DEBUG=false`), run against a "
        f"throwaway installation (SQLite, tasks in-process) with {escrow.sites_label}, so "
        "the worker receives, checks, seals, stores and replicates before it answers. The "
        f"client is `http.client`, sending the file in {CHUNK // 1024**2} MiB reads with "
        "Content-Length, X-Archive-SHA256 and the Bearer token. Memory is the worker's own "
        "`VmRSS`/`VmHWM` from `/proc/<pid>/status` (the worker is the master's only child), "
        "read after the app answered a first API request and again after the upload; "
        "nothing is subtracted.",
        "",
        *rows,
        "",
        f"Target: the worker's peak at most {TARGET_MIB} MiB: {verdict} "
        f"({_mib(upload.worker_peak_hwm_kib)}).",
        "",
        "Machine:",
        "",
        *machine_summary(),
        f"- gunicorn: {gunicorn}",
        f"- Load average (1, 5, 15 min) before: {loads[0]}; after: {loads[1]}",
        "",
        "Reproduce: `make bench` (all benchmarks), or this section alone with "
        f"`.venv/bin/python -m bench.run --only {SECTION_ID} --size {size_argument}`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.run import main

    main(["--only", SECTION_ID, *sys.argv[1:]])
