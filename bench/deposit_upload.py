"""A whole deposit over HTTP, PUT sent to answer read, next to ``age -r`` on the same file.

The app is the embedded default (``bench.escrow_env``: SQLite, tasks in-process,
two local sites, nothing configured but a throwaway ``ESCROW_VAR_DIR``) served
as ``make run`` serves it (``manage.py runserver``) and by
``gunicorn config.wsgi:application --workers 1``, each measured (SERVERS). The client is
``http.client`` over loopback, sending the file with Content-Length and
X-Archive-SHA256 (hashed before the clock starts); the time runs from the
first byte sent to the answer read. The answer comes once the deposit is
stored in the primary site; replication follows it, and the next run waits
for it (and its time is reported apart).

Two inputs of ``--size`` bytes each: a plain tar (incompressible members) and
a .tar.gz (source-like text and some binary, ~3-5x smaller than its tar; the
app inflates it to inspect it). For each, REPEATS rounds of ``age -r``,
``age -r`` then ``sync``, and the deposit, rotating who goes first, with
``sync`` before every run; medians are compared: the target is the deposit at
TARGET_RATIO (stretch STRETCH_RATIO) times age's throughput.

Where the time goes comes from the worker's log: the intake logs one line per
deposit with ``one-pass timings`` and a JSON object whose ``busy_s`` holds
seconds per step. The CPU use per core is ``/proc/stat`` sampled around each
request, with the worker's and the client's own CPU seconds.

    .venv/bin/python -m bench.deposit_upload --size 1GiB       # this section only
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.age_throughput import Run, timed
from bench.escrow_env import (
    WORKER_TIMEOUT_SECONDS,
    EscrowEnv,
    Upload,
    WebServer,
    check_sealed,
    create,
    load_average,
    log,
    one_pass_timings,
    output_of,
    require_tools,
    write_tar,
    write_tar_gz,
)
from bench.run import Section, format_size, machine_summary

SECTION_ID = "deposit-upload"
TITLE = "Deposit over HTTP against `age -r`: throughput, where the time goes, CPU per core"
REPEATS = 3
#: The servers a deposit is measured through: what `make run` serves the embedded default
#: with, and what production runs.
SERVERS = (("runserver", "`make run` (runserver)"), ("gunicorn", "gunicorn"))
#: Goals for the plain tar and the .tar.gz: (target, stretch), as age's time / ours.
TARGETS = {"plain tar": (0.5, 0.8), ".tar.gz": (0.3, 0.5)}


@dataclass
class Measured:
    """Every run of one input."""

    name: str
    size: int
    #: How the input was made, for the reader.
    description: str
    #: The input's kind, a key of TARGETS.
    kind: str = ""
    age: list[Run] = field(default_factory=list)
    age_sync: list[Run] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    #: Seconds from the answer until the worker was done with the deposit.
    settle_seconds: list[float] = field(default_factory=list)
    settled_states: list[str] = field(default_factory=list)
    #: The ``one-pass timings`` object of each upload, None where none was logged.
    timings: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def age_seconds(self) -> float:
        return statistics.median(run.seconds for run in self.age)

    @property
    def deposit_seconds(self) -> float:
        return statistics.median(upload.seconds for upload in self.uploads)

    @property
    def ratio(self) -> float:
        """age's time over ours: the deposit's throughput as a fraction of age's."""
        return self.age_seconds / self.deposit_seconds


def run(*, size: int, workdir: Path) -> Section:
    """Deposit a ``size``-byte plain tar and .tar.gz REPEATS times each next to ``age -r``."""
    require_tools()
    load_before = load_average()
    log("setting up a throwaway installation (the embedded default)")
    escrow = create(workdir / "installation")
    measured: list[Measured] = []
    archive, archive_gz = workdir / "archive.tar", workdir / "archive.tar.gz"
    log(f"writing a {format_size(size)} plain tar")
    sha256 = write_tar(archive, size)
    log(f"writing a {format_size(size)} .tar.gz")
    tar_gz = write_tar_gz(archive_gz, size)
    hwm: dict[str, tuple[int, int]] = {}
    for major, (server_kind, label) in enumerate(SERVERS, start=1):
        with WebServer(escrow, workdir / f"{server_kind}.log", server=server_kind) as server:
            baseline_hwm = server.worker_kib("VmHWM")
            plain = Measured(
                f"plain tar, {label}",
                size,
                "a plain tar of a few hundred members, one in four source-like ASCII text "
                "and the rest binary, all from a ChaCha20 key stream so nothing compresses",
                kind="plain tar",
            )
            measured.append(
                _measure(server, escrow, plain, archive, sha256, workdir, major=2 * major - 1)
            )
            compressed = Measured(
                f".tar.gz, {label}",
                tar_gz.size,
                f"a .tar.gz of {tar_gz.size:,} bytes holding a "
                f"{tar_gz.tar_size / 1024**3:.2f} GiB tar ({tar_gz.ratio:.1f}x smaller): lines "
                "of source-like text (identifiers, operators, indentation), with one member "
                "in 16 binary and incompressible, deflated at gzip's default level 6 (text "
                "in 128 KiB pages, each deflated once and reused; binary members stored, as "
                "gzip stores incompressible data)",
                kind=".tar.gz",
            )
            measured.append(
                _measure(
                    server, escrow, compressed, archive_gz, tar_gz.sha256, workdir, major=2 * major
                )
            )
            hwm[label] = (baseline_hwm, server.worker_kib("VmHWM"))
    # What build verification's intake copy (issue 16) costs the pass: the same plain tar
    # with verification turned off, so the pass writes no plaintext copy.
    with WebServer(
        escrow,
        workdir / "runserver-no-verify.log",
        server="runserver",
        settings={"ESCROW_VERIFY_ENABLED": "0"},
    ) as server:
        no_copy = Measured(
            f"plain tar, {SERVERS[0][1]}, build verification off (no intake copy)",
            size,
            "the same plain tar",
            kind="plain tar",
        )
        measured.append(
            _measure(server, escrow, no_copy, archive, sha256, workdir, major=2 * len(SERVERS) + 1)
        )
    archive.unlink()
    archive_gz.unlink()
    baseline_hwm, peak_hwm = hwm[SERVERS[-1][1]]
    gunicorn = output_of([sys.executable, "-m", "gunicorn", "--version"])
    body = _render(
        size=size,
        measured=measured,
        worker_hwm_kib=(baseline_hwm, peak_hwm),
        versions=(output_of(["age", "--version"]), gunicorn),
        loads=(load_before, load_average()),
    )
    return Section(SECTION_ID, TITLE, body)


def _measure(
    server: WebServer,
    escrow: EscrowEnv,
    measured: Measured,
    archive: Path,
    sha256: str,
    workdir: Path,
    *,
    major: int,
) -> Measured:
    """Run the contenders on ``archive`` REPEATS times, rotating who goes first; the
    deposits are versions ``<major>.<run>.0``."""
    output = workdir / "out.age"

    def age_plain() -> None:
        measured.age.append(timed(["age", "-r", escrow.recipient, "-o", output, archive]))
        output.unlink()

    def age_then_sync() -> None:
        # age's bytes on disk when it ends, as the app's fsyncs put its own.
        script = 'age -r "$0" -o "$1" "$2" && sync'
        measured.age_sync.append(timed(["sh", "-c", script, escrow.recipient, output, archive]))
        output.unlink()

    def deposit() -> None:
        number = len(measured.uploads)
        upload = server.put(archive, version=f"{major}.{number}.0", sha256=sha256)
        if upload.status != 202 or upload.state not in ("stored", "replicated"):
            raise RuntimeError(
                f"the {measured.name} deposit answered {upload.status} with state "
                f"{upload.state!r} ({upload.problem}); the server's log:\n{server.log_tail()}"
            )
        state, waited = server.wait_settled(upload.deposit_id)
        server.check_worker()
        if number == 0:
            check_sealed(escrow, sha256, workdir)
        measured.uploads.append(upload)
        measured.settled_states.append(state)
        measured.settle_seconds.append(waited)
        measured.timings.append(
            one_pass_timings(server.log_since(upload.log_offset), upload.deposit_id)
        )
        escrow.clear_sites()

    contenders: list[tuple[str, Callable[[], None]]] = [
        ("age -r", age_plain),
        ("age -r, then sync", age_then_sync),
        ("deposit", deposit),
    ]
    for repeat in range(REPEATS):
        for name, contender in contenders[repeat:] + contenders[:repeat]:
            log(f"{measured.name}: {name}, run {repeat + 1}/{REPEATS}")
            contender()
    return measured


def _rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:,.0f} MB/s" if seconds > 0 else "-"


def _percent(share: float) -> str:
    return f"{share:.0%}"


def _verdict(ratio: float, goal: float) -> str:
    return "met" if ratio >= goal else "**not met**"


def _throughput_rows(measured: list[Measured]) -> list[str]:
    rows = [
        "| Input | File size | `age -r` | `age -r`, then `sync` | **deposit**: PUT sent to "
        "answer read | Deposit throughput | **vs `age -r`** | Target / stretch | "
        "Answer to replicated |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for item in measured:
        target, stretch = TARGETS[item.kind]
        age_sync = statistics.median(run.seconds for run in item.age_sync)
        rows.append(
            f"| {item.name} | {item.size:,} B | {item.age_seconds:.2f} s "
            f"({_rate(item.size, item.age_seconds)}) | {age_sync:.2f} s | "
            f"**{item.deposit_seconds:.2f} s** | {_rate(item.size, item.deposit_seconds)} | "
            f"**{item.ratio:.2f}x** | >= {target}x: {_verdict(item.ratio, target)}; "
            f">= {stretch}x: {_verdict(item.ratio, stretch)} | "
            f"{statistics.median(item.settle_seconds):.2f} s |"
        )
    return rows


def _step_names(measured: list[Measured]) -> list[str]:
    """Every ``busy_s`` key logged, in the order the log gives them."""
    names: list[str] = []
    for item in measured:
        for timings in item.timings:
            for name in (timings or {}).get("busy_s", {}):
                if name not in names:
                    names.append(name)
    return names


def _median_of(item: Measured, pick: Callable[[dict[str, Any]], Any]) -> float | None:
    """The median over the runs that logged timings of ``pick(timings)``, or None."""
    values = []
    for timings in item.timings:
        if timings is None:
            continue
        try:
            values.append(float(pick(timings)))
        except (KeyError, TypeError, ValueError):
            continue
    return statistics.median(values) if values else None


def _busy_seconds(name: str) -> Callable[[dict[str, Any]], Any]:
    """Picks step ``name`` out of a ``one-pass timings`` object."""
    return lambda timings: timings["busy_s"][name]


def _steps_table(measured: list[Measured]) -> list[str]:
    logged = [item for item in measured if any(item.timings)]
    missing = [item.name for item in measured if not any(item.timings)]
    if not logged:
        return ["Not logged: the worker's log has no `one-pass timings` line for any deposit."]
    header = "| Step (`busy_s` in the worker's log), median of the runs |"
    rule = "|---|"
    for item in logged:
        header += f" {item.name}: seconds | share of the request | archive bytes / seconds |"
        rule += "---:|---:|---:|"
    rows = [header, rule]

    def row(label: str, pick: Callable[[dict[str, Any]], Any]) -> str:
        cells = f"| {label} |"
        for item in logged:
            seconds = _median_of(item, pick)
            if seconds is None:
                cells += " not logged | - | - |"
                continue
            share = _percent(seconds / item.deposit_seconds)
            rate = _rate(item.size, seconds) if seconds >= 0.05 else "-"
            cells += f" {seconds:.2f} | {share} | {rate} |"
        return cells

    for name in _step_names(logged):
        rows.append(row(f"`{name}`", _busy_seconds(name)))
    if any(timings and "wall_s" in timings for item in logged for timings in item.timings):
        rows.append(row("`wall_s`: the deposit, as the worker timed it", lambda t: t["wall_s"]))
    rows.append(
        "| the request, as the client timed it (PUT sent to answer read) |"
        + "".join(
            f" {item.deposit_seconds:.2f} | 100% | {_rate(item.size, item.deposit_seconds)} |"
            for item in logged
        )
    )
    lines = rows
    if missing:
        lines += ["", f"Not logged for: {', '.join(missing)}."]
    partial = [
        f"{item.name} ({sum(timings is None for timings in item.timings)} of "
        f"{len(item.timings)} runs)"
        for item in logged
        if not all(item.timings)
    ]
    if partial:
        lines += ["", f"Runs without the line: {', '.join(partial)}."]
    extras = _extra_fields(logged)
    if extras:
        lines += ["", "Other fields of the line (last run): " + "; ".join(extras) + "."]
    return lines


def _extra_fields(measured: list[Measured]) -> list[str]:
    """The line's fields besides deposit, bytes, wall_s and busy_s, as logged."""
    shown = []
    for item in measured:
        last = next((timings for timings in reversed(item.timings) if timings), None)
        for key, value in (last or {}).items():
            if key not in ("deposit", "bytes", "wall_s", "busy_s"):
                shown.append(f"{item.name} `{key}` = `{value}`")
    return shown


def _cpu_table(measured: list[Measured]) -> list[str]:
    header = "| During the request (median of the runs) |"
    rule = "|---|"
    for item in measured:
        header += f" {item.name} |"
        rule += "---:|"
    rows = [header, rule]
    cores = len(measured[0].uploads[0].core_busy)
    for core in range(cores):
        cells = f"| cpu{core}: busy (iowait) |"
        for item in measured:
            busy = statistics.median(upload.core_busy[core] for upload in item.uploads)
            iowait = statistics.median(upload.core_iowait[core] for upload in item.uploads)
            cells += f" {_percent(busy)} ({_percent(iowait)}) |"
        rows.append(cells)

    def process_row(label: str, seconds_of: Callable[[Upload], float]) -> str:
        cells = f"| {label} |"
        for item in measured:
            seconds = statistics.median(seconds_of(upload) for upload in item.uploads)
            cells += f" {seconds:.2f} s = {_percent(seconds / item.deposit_seconds)} of a core |"
        return cells

    rows.append(process_row("server (worker): user + system CPU", lambda u: u.worker_cpu_seconds))
    rows.append(
        process_row("client (this driver): user + system CPU", lambda u: u.client_cpu_seconds)
    )
    rows.append(
        "| request wall time | "
        + " | ".join(f"{item.deposit_seconds:.2f} s" for item in measured)
        + " |"
    )
    return rows


def _individual(measured: list[Measured]) -> list[str]:
    lines = []
    for item in measured:
        lines += [
            f"- {item.name}, age -r: " + ", ".join(f"{run.seconds:.2f} s" for run in item.age),
            f"- {item.name}, age -r then sync: "
            + ", ".join(f"{run.seconds:.2f} s" for run in item.age_sync),
            f"- {item.name}, deposit (answer; then the final state after): "
            + ", ".join(
                f"{upload.seconds:.2f} s ({upload.status} `{upload.state}`; `{state}` "
                f"{settle:.2f} s later)"
                for upload, state, settle in zip(
                    item.uploads, item.settled_states, item.settle_seconds, strict=True
                )
            ),
        ]
    return lines


def _render(
    *,
    size: int,
    measured: list[Measured],
    worker_hwm_kib: tuple[int, int],
    versions: tuple[str, str],
    loads: tuple[str, str],
) -> str:
    inputs = [f"- {item.kind}: {item.description}." for item in measured[:2]]
    verdicts = [
        f"- {item.name}: {item.ratio:.2f}x; target {TARGETS[item.kind][0]}x "
        f"{_verdict(item.ratio, TARGETS[item.kind][0])}, stretch {TARGETS[item.kind][1]}x "
        f"{_verdict(item.ratio, TARGETS[item.kind][1])}."
        for item in measured
    ]
    size_argument = format_size(size).replace(" ", "")
    lines = [
        "One deposit is a PUT over loopback to the app served two ways: as `make run` serves "
        "the embedded default (`manage.py runserver --noreload`, Django's development "
        "server: one process, the body read with large reads from a buffered socket), and "
        "as production runs it, `gunicorn config.wsgi:application --workers 1` (sync "
        f"worker, `--timeout {WORKER_TIMEOUT_SECONDS}`), where the app reads the body "
        "straight from gunicorn's socket (`escrow/api/body.py`). Both serve a "
        "throwaway installation in the embedded default: "
        "SQLite, tasks in-process, the two local sites (primary and replica), nothing "
        "configured but `ESCROW_VAR_DIR` (so `LOG_LEVEL` is INFO). The client is "
        "`http.client`, sending the file from disk in 1 MiB reads with Content-Length, "
        "X-Archive-SHA256 (hashed before timing) and the Bearer token; the time runs from "
        "the first byte sent (connection already open) to the answer read. Replication "
        "happens after the answer: each deposit was followed until the worker was done "
        "(`Answer to replicated`), and its stored objects were removed, before the next "
        "run. `age -r R -o out.age FILE` encrypted the same file on the same disk. Each "
        f"contender ran {REPEATS} times per input, rotating which went first, with `sync` "
        "before every run; medians shown. The first deposit of each input was opened from "
        "the primary site with `age -d` and the notary's key and compared with the input. "
        "The product has no build recipe, so build verification (issue 16) records "
        "`no_recipe` when the deposit is stored; the pass still writes the plaintext intake "
        "copy, because whether the archive holds a recipe is known only at its end. The "
        "last row runs the plain tar once more with `ESCROW_VERIFY_ENABLED=0`: no copy, "
        "which prices the copy.",
        "",
        "Inputs, each in the benchmark's temporary directory:",
        "",
        *inputs,
        "",
        *_throughput_rows(measured),
        "",
        "\"vs `age -r`\" is age's median time over the deposit's: the deposit's throughput "
        "as a share of age's. Targets (issue 13):",
        "",
        *verdicts,
        "",
        "### Where the time goes",
        "",
        "From the intake's own `one-pass timings` log line, one per deposit, parsed from the "
        "worker's standard error. The steps are the keys of its `busy_s`, in the order "
        "logged (the intake's documentation says what each covers), each as seconds, as a "
        "share of the request's median wall time, and as the archive's size over those "
        "seconds: the rate that step alone would allow. Steps may overlap in time, so the "
        "shares need not add up to 100%.",
        "",
        *_steps_table(measured),
        "",
        "### CPU use per core",
        "",
        "Each core's busy share of the request's wall time (`/proc/stat` per cpu, sampled "
        "just before the first byte and just after the answer: user, nice, system, irq, "
        "softirq and steal over all ticks; iowait is idle time waiting for the disk), and "
        "the CPU seconds of the worker (`/proc/<pid>/stat` utime + stime, all its threads) "
        "and of the client (`os.times()`) over the same span. Everything else on the "
        "machine counts in the per-core shares too.",
        "",
        *_cpu_table(measured),
        "",
        f"The gunicorn worker's VmHWM: {worker_hwm_kib[0] / 1024:.1f} MiB after start-up and a "
        f"first request, {worker_hwm_kib[1] / 1024:.1f} MiB after all the deposits above "
        "(see the next section for the memory target).",
        "",
        "Individual runs:",
        "",
        *_individual(measured),
        "",
        "Machine:",
        "",
        *machine_summary(),
        f"- age: {versions[0]}",
        f"- gunicorn: {versions[1]}",
        f"- Load average (1, 5, 15 min) before: {loads[0]}; after: {loads[1]} "
        "(well above what the benchmark itself keeps busy means other processes competed)",
        "",
        "Reproduce: `make bench` (all benchmarks), or this section alone with "
        f"`.venv/bin/python -m bench.run --only {SECTION_ID} --size {size_argument}`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.run import main

    main(["--only", SECTION_ID, *sys.argv[1:]])
