"""Peak memory of the web worker taking a ``--size`` and a 4x ``--size`` deposit over HTTP.

A deposit must cost the worker constant memory: a 4 GiB archive no more than
a 1 GiB one, and neither more than TARGET_MIB. For each case a fresh
``gunicorn config.wsgi:application --workers 1`` (sync worker) serves the
throwaway installation of ``bench.escrow_env`` (the embedded default: SQLite,
tasks in-process, two local sites), and an archive is PUT over loopback with
``http.client``, streamed from the file: a plain tar of each size once, then,
because a worker lives for many deposits and a compressed tar takes more stages,
the smaller plain tar WARM_DEPOSITS times to one worker and a .tar.gz of the
smaller size GZ_DEPOSITS times to another. The worker reports its own memory in
``/proc/<pid>/status``: ``VmRSS``/``VmHWM`` once the app has answered a first
request (the baseline), ``VmHWM`` when the (last) answer arrives, and again once
the deposit is replicated (replication runs in the worker after the answer),
which is the peak judged. Nothing is subtracted.

    .venv/bin/python -m bench.upload_memory --size 1GiB       # 1 GiB and 4 GiB
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.escrow_env import (
    CHUNK,
    WORKER_TIMEOUT_SECONDS,
    EscrowEnv,
    WebServer,
    check_sealed,
    create,
    load_average,
    log,
    output_of,
    proc_status_kib,
    require_tools,
    write_tar,
    write_tar_gz,
)
from bench.run import Section, format_size, machine_summary

SECTION_ID = "web-upload-rss"
TITLE = "Web worker peak RSS"
TARGET_MIB = 100
#: "Flat": the larger archive's peak may exceed the smaller's by this much.
FLAT_TOLERANCE_MIB = 5
#: The archive, the primary's and the replica's copies (and an intake file) at once.
_DISK_FACTOR = 3.5
#: Deposits one worker takes in the rows that show a worker that has served a while.
WARM_DEPOSITS = 5
GZ_DEPOSITS = 3


@dataclass(frozen=True)
class WorkerMemory:
    """The worker's memory around ``deposits`` deposits of one archive of ``size`` bytes."""

    label: str
    deposits: int
    size: int
    status: int
    state: str
    seconds: float
    baseline_rss_kib: int
    baseline_hwm_kib: int
    answer_hwm_kib: int
    settled_hwm_kib: int
    settled_rss_kib: int
    master_hwm_kib: int

    @property
    def peak_kib(self) -> int:
        return max(self.answer_hwm_kib, self.settled_hwm_kib)


def run(*, size: int, workdir: Path) -> Section:
    """Deposit a ``size`` and a ``4 * size`` plain tar, a fresh server each; return the section."""
    require_tools()
    sizes = (size, 4 * size)
    free = shutil.disk_usage(workdir).free
    if free < _DISK_FACTOR * sizes[-1]:
        raise RuntimeError(
            f"{workdir} has {format_size(free)} free; depositing {format_size(sizes[-1])} "
            f"needs about {_DISK_FACTOR * sizes[-1] / 1024**3:.0f} GiB (try --workdir)"
        )
    load_before = load_average()
    log("setting up a throwaway installation (the embedded default)")
    escrow = create(workdir / "installation")
    measured = []
    archive = workdir / "archive.tar"
    for number, archive_size in enumerate(sizes):
        log(f"writing a {format_size(archive_size)} plain tar")
        sha256 = write_tar(archive, archive_size)
        label = f"{format_size(archive_size)} plain tar"
        measured.append(_measure(escrow, archive, sha256, label, f"5.{number}", workdir))
        # Free the disk before the next, larger archive.
        archive.unlink()
        escrow.clear_sites()
    log(f"writing a {format_size(size)} plain tar")
    sha256 = write_tar(archive, size)
    label = f"{format_size(size)} plain tar, {WARM_DEPOSITS} deposits to one worker"
    measured.append(_measure(escrow, archive, sha256, label, "6", workdir, deposits=WARM_DEPOSITS))
    archive.unlink()
    compressed = workdir / "archive.tar.gz"
    log(f"writing a {format_size(size)} .tar.gz")
    tar_gz = write_tar_gz(compressed, size)
    label = (
        f"{format_size(size)} .tar.gz ({tar_gz.tar_size / 1024**3:.2f} GiB tar), "
        f"{GZ_DEPOSITS} deposits to one worker"
    )
    measured.append(
        _measure(escrow, compressed, tar_gz.sha256, label, "7", workdir, deposits=GZ_DEPOSITS)
    )
    compressed.unlink()
    title = f"{TITLE} at {format_size(sizes[0])} and {format_size(sizes[1])}"
    gunicorn = output_of([sys.executable, "-m", "gunicorn", "--version"])
    return Section(
        SECTION_ID, title, _render(size, measured, gunicorn, (load_before, load_average()))
    )


def _measure(
    escrow: EscrowEnv,
    archive: Path,
    sha256: str,
    label: str,
    major: str,
    workdir: Path,
    *,
    deposits: int = 1,
) -> WorkerMemory:
    """``deposits`` deposits of ``archive`` to one fresh server, one after the other, with
    the worker's memory around them (the answer's and the peak are the last deposit's)."""
    size = archive.stat().st_size
    with WebServer(escrow, workdir / f"gunicorn-{major}.log") as server:
        baseline_rss = server.worker_kib("VmRSS")
        baseline_hwm = server.worker_kib("VmHWM")
        for number in range(deposits):
            log(f"PUT {format_size(size)} to worker {server.worker} ({number + 1}/{deposits})")
            upload = server.put(archive, version=f"{major}.{number}.0", sha256=sha256)
            if upload.status != 202 or upload.state not in ("stored", "replicated"):
                raise RuntimeError(
                    f"the upload answered {upload.status} with state {upload.state!r} "
                    f"({upload.problem}); the server's log:\n{server.log_tail()}"
                )
            answer_hwm = server.worker_kib("VmHWM")
            state, _waited = server.wait_settled(upload.deposit_id)
            server.check_worker()
            if number == 0:
                # Not timed, not counted: the deposit must really be the archive, sealed.
                check_sealed(escrow, sha256, workdir)
            escrow.clear_sites()
        settled_hwm, settled_rss = server.worker_kib("VmHWM"), server.worker_kib("VmRSS")
        return WorkerMemory(
            label=label,
            deposits=deposits,
            size=size,
            status=upload.status,
            state=state,
            seconds=upload.seconds,
            baseline_rss_kib=baseline_rss,
            baseline_hwm_kib=baseline_hwm,
            answer_hwm_kib=answer_hwm,
            settled_hwm_kib=settled_hwm,
            settled_rss_kib=settled_rss,
            master_hwm_kib=proc_status_kib(server.master, "VmHWM"),
        )


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def _render(size: int, measured: list[WorkerMemory], gunicorn: str, loads: tuple[str, str]) -> str:
    rows = [
        "| Archive | Answer, then | Request | Baseline VmRSS | Baseline VmHWM | VmHWM at the "
        "answer | **Peak: VmHWM once replicated** | Added (peak - baseline VmRSS) | VmRSS "
        "after | gunicorn master VmHWM | Within target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for item in measured:
        within = "yes" if item.peak_kib <= TARGET_MIB * 1024 else "**no**"
        rows.append(
            f"| {item.label} | {item.status}, then `{item.state}` | "
            f"{item.seconds:.1f} s | {_mib(item.baseline_rss_kib)} | "
            f"{_mib(item.baseline_hwm_kib)} | {_mib(item.answer_hwm_kib)} | "
            f"**{_mib(item.peak_kib)}** | {_mib(item.peak_kib - item.baseline_rss_kib)} | "
            f"{_mib(item.settled_rss_kib)} | {_mib(item.master_hwm_kib)} | {within} |"
        )
    under = all(item.peak_kib <= TARGET_MIB * 1024 for item in measured)
    # Flat: the two plain tars, 1x and 4x, each the first deposit of a fresh worker.
    growth = (measured[1].peak_kib - measured[0].peak_kib) / 1024
    flat = growth <= FLAT_TOLERANCE_MIB
    reasons = []
    if not under:
        reasons.append(f"a peak is above {TARGET_MIB} MiB")
    if not flat:
        reasons.append(
            f"the {format_size(measured[1].size)} peak is {growth:.1f} MiB above the "
            f"{format_size(measured[0].size)} one, so memory grows with the archive"
        )
    verdict = "met" if under and flat else "**not met**"
    because = f" ({'; '.join(reasons)})" if reasons else ""
    size_argument = format_size(size).replace(" ", "")
    lines = [
        "For each size, a fresh `gunicorn config.wsgi:application --workers 1 --timeout "
        f"{WORKER_TIMEOUT_SECONDS}` (sync worker) served a throwaway installation in the "
        "embedded default (SQLite, tasks in-process, two local sites, nothing configured "
        "but `ESCROW_VAR_DIR`), and an archive was PUT over loopback by `http.client`, "
        "from the file in "
        f"{CHUNK // 1024**2} MiB reads, with Content-Length, X-Archive-SHA256 and the "
        "Bearer token: a plain tar of a few hundred incompressible members at each size, "
        f"once; then the smaller one {WARM_DEPOSITS} times to one worker, and a .tar.gz "
        f"(`bench.escrow_env.write_tar_gz`) {GZ_DEPOSITS} times to another, since a "
        "worker serves many deposits and a compressed tar passes through more stages. "
        "Memory is the worker's own `VmRSS`/`VmHWM` from "
        "`/proc/<pid>/status` (the worker is the master's only child): the baseline once "
        "the app had answered a first API request, then `VmHWM` when the (last) answer "
        "arrived and once the (last) deposit was replicated (replication runs in the "
        "worker after the answer); the peak judged is the larger. Nothing is subtracted. "
        "After the first deposit of each row was replicated (outside what is measured), "
        "its sealed file was "
        "opened from the primary site with `age -d` and the notary's key and compared "
        "with the archive: this is also the check that a 4x deposit streams through "
        "whole.",
        "",
        *rows,
        "",
        f"Target: the worker's peak at most {TARGET_MIB} MiB in every row, and flat (the "
        f"two plain tars' peaks within {FLAT_TOLERANCE_MIB} MiB of each other): "
        f"{verdict}{because}. The larger plain tar's peak is {growth:+.1f} MiB against "
        "the smaller's.",
        "",
        "Machine:",
        "",
        *machine_summary(),
        f"- gunicorn: {gunicorn}",
        f"- Load average (1, 5, 15 min) before: {loads[0]}; after: {loads[1]}",
        "",
        "Reproduce: `make bench` (all benchmarks), or this section alone with "
        f"`.venv/bin/python -m bench.run --only {SECTION_ID} --size {size_argument}` "
        f"({size_argument} and four times that; needs about "
        f"{_DISK_FACTOR * 4 * size / 1024**3:.0f} GiB free in `--workdir`).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.run import main

    main(["--only", SECTION_ID, *sys.argv[1:]])
