"""Throughput and peak memory of ``manage.py vault encrypt/decrypt`` next to the age tool.

One run, side by side: ``age -r`` against ``vault encrypt -r`` and ``age -d``
against ``vault decrypt``, each repeated REPEATS times (median kept), on a
random file of ``--size`` bytes (1 GiB by default) that was read once first
so every tool starts from a warm page cache. Both tools run with ``-o FILE``
and writing to standard output redirected to a file. vault's ``-o`` makes the
file durable (temporary file, fsync, rename) and age's does not, so age also
runs as ``age -o FILE`` followed by ``sync``, and vault reports the time of its
final fsync on stderr (``$VAULT_REPORT_FSYNC``): the fsync's cost is shown on
its own. The target is at least TARGET_RATIO times age's throughput.

    .venv/bin/python -m bench.age_throughput --size 1GiB       # this section only
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.run import REPO, Section, format_size, machine_summary

SECTION_ID = "age-throughput"
TITLE = "age encryption: `manage.py vault` against the age tool"
#: Runs per contender. Writing 1 GiB into the page cache of a virtual machine
#: varies a lot from run to run, so the median needs more than three.
REPEATS = 5
TARGET_RATIO = 0.8
#: GNU time, for each child's peak RSS (Debian package `time`).
TIME = "/usr/bin/time"
_BLOCK = 16 * 1024 * 1024
#: What ``vault ... -o`` prints on stderr when $VAULT_REPORT_FSYNC is set.
_FSYNC_REPORT = re.compile(r"final fsync and rename took (?P<seconds>[0-9.]+) s")

Argv = Sequence[str | Path]


@dataclass(frozen=True)
class Contender:
    """One way of running an operation: ``argv`` lacks the output and the input."""

    name: str
    argv: Argv
    to_stdout: bool = False
    then_sync: bool = False

    def command(self, source: Path, output: Path) -> list[str | Path]:
        if self.to_stdout:
            return [*self.argv, source]
        command = [*self.argv, "-o", output, source]
        if self.then_sync:
            # sync(1) after the tool: the same durability as vault's fsync.
            return ["sh", "-c", '"$@" && sync', "sh", *command]
        return command


@dataclass(frozen=True)
class Run:
    """One timed child process: wall time and its own peak resident set size."""

    seconds: float
    peak_rss_kib: int
    fsync_seconds: float | None = None


@dataclass(frozen=True)
class Series:
    """REPEATS runs of one contender doing one operation."""

    operation: str
    contender: str
    runs: tuple[Run, ...]

    @property
    def median_seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def peak_rss_kib(self) -> int:
        return max(run.peak_rss_kib for run in self.runs)

    @property
    def median_fsync_seconds(self) -> float | None:
        reported = [run.fsync_seconds for run in self.runs if run.fsync_seconds is not None]
        return statistics.median(reported) if reported else None


def timed(argv: Argv, *, env: dict[str, str] | None = None, stdout: Path | None = None) -> Run:
    """Run ``argv`` once and return its wall time and peak RSS.

    Dirty pages from the previous run are flushed first, so no run pays for
    its predecessor's writeback. The peak RSS comes from ``/usr/bin/time``:
    a child forked straight from this (large) Python process would inherit
    its size in ``ru_maxrss`` and make a small tool like age look big.
    """
    os.sync()
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "time.txt"
        stderr_path = Path(scratch) / "stderr.txt"
        with (
            stderr_path.open("wb") as stderr,
            open(stdout or os.devnull, "wb") as output,
        ):
            started = time.perf_counter()
            result = subprocess.run(
                [TIME, "-f", "%M", "-o", report, *argv],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=stderr,
                check=False,
            )
            seconds = time.perf_counter() - started
        if result.returncode != 0:
            message = stderr_path.read_text(errors="replace").strip()
            raise RuntimeError(f"{' '.join(map(str, argv))} failed: {message}")
        peak_rss_kib = int(report.read_text().split()[-1])
        fsync = _FSYNC_REPORT.search(stderr_path.read_text(errors="replace"))
    return Run(
        seconds=seconds,
        peak_rss_kib=peak_rss_kib,
        fsync_seconds=float(fsync["seconds"]) if fsync else None,
    )


def run(*, size: int, workdir: Path) -> Section:
    """Measure age and vault on a ``size``-byte file in ``workdir``; return the section."""
    if not os.access(TIME, os.X_OK):
        raise RuntimeError(f"{TIME} is needed to measure peak RSS (Debian package `time`)")
    key = workdir / "key.txt"
    subprocess.run(["age-keygen", "-o", key], check=True, capture_output=True)
    recipient = _command_output(["age-keygen", "-y", key])
    vault = [sys.executable, "manage.py", "vault"]
    env = {name: value for name, value in os.environ.items() if name != "AGE_PASSPHRASE"}
    env["ESCROW_VAR_DIR"] = str(workdir / "var")
    env["VAULT_REPORT_FSYNC"] = "1"

    plain = workdir / "plain.bin"
    reference = workdir / "reference.age"
    _log(f"writing {format_size(size)} of random data")
    _write_random_file(plain, size)
    expected = _sha256(plain)  # also the warm-up read that puts the input in the page cache
    timed(["age", "-r", recipient, "-o", reference, plain])
    _sha256(reference)  # warms the decryption input too

    others = _OtherWork()
    operations = {
        "encrypt": (
            plain,
            [
                Contender("age", ["age", "-r", recipient]),
                Contender("age, to stdout", ["age", "-r", recipient], to_stdout=True),
                Contender("age, then sync", ["age", "-r", recipient], then_sync=True),
                Contender("vault", [*vault, "encrypt", "-r", recipient]),
                Contender("vault, to stdout", [*vault, "encrypt", "-r", recipient], True),
            ],
        ),
        "decrypt": (
            reference,
            [
                Contender("age", ["age", "-d", "-i", key]),
                Contender("age, to stdout", ["age", "-d", "-i", key], to_stdout=True),
                Contender("age, then sync", ["age", "-d", "-i", key], then_sync=True),
                Contender("vault", [*vault, "decrypt", "-i", key]),
                Contender("vault, to stdout", [*vault, "decrypt", "-i", key], True),
            ],
        ),
    }
    series: list[Series] = []
    for operation, (source, contenders) in operations.items():
        runs: dict[str, list[Run]] = {contender.name: [] for contender in contenders}
        for repeat in range(REPEATS):
            # Rotate who goes first, so drift in the machine's state is shared.
            for contender in contenders[repeat:] + contenders[:repeat]:
                output = workdir / f"{operation}.out"
                _log(f"{operation}: {contender.name}, run {repeat + 1}/{REPEATS}")
                command = contender.command(source, output)
                stdout = output if contender.to_stdout else None
                runs[contender.name].append(timed(command, env=env, stdout=stdout))
                if repeat == 0:
                    _check_output(operation, contender.name, output, key, expected)
                output.unlink()
        series += [Series(operation, name, tuple(found)) for name, found in runs.items()]

    empty = workdir / "empty.bin"
    empty.write_bytes(b"")
    startup = {
        contender.name: statistics.median(
            timed(contender.command(empty, workdir / f"{contender.name}-{n}.age"), env=env).seconds
            for n in range(REPEATS)
        )
        for contender in operations["encrypt"][1]
        if contender.name in ("age", "vault")
    }
    age_version = _command_output(["age", "--version"])
    load = others.summary()
    return Section(SECTION_ID, TITLE, _render(size, series, startup, age_version, load))


def _check_output(operation: str, contender: str, output: Path, key: Path, expected: str) -> None:
    """Make sure the timed command did its job before trusting its time."""
    if operation == "decrypt":
        actual = _sha256(output)
    else:
        # Whatever was encrypted must open with the reference tool.
        decrypted = output.with_suffix(".check")
        subprocess.run(["age", "-d", "-i", key, "-o", decrypted, output], check=True)
        actual = _sha256(decrypted)
        decrypted.unlink()
    if actual != expected:
        raise RuntimeError(f"{operation} by {contender} produced the wrong bytes")


#: The age row each row is compared with: the same kind of output.
_COMPARED_WITH = {
    "age": "age",
    "age, to stdout": "age, to stdout",
    "age, then sync": "age",
    "vault": "age",
    "vault, to stdout": "age, to stdout",
}


def _render(
    size: int, series: list[Series], startup: dict[str, float], age_version: str, load: str
) -> str:
    by_key = {(item.operation, item.contender): item for item in series}
    rows = [
        "| Operation | Tool | Median wall time | Throughput | Peak RSS | Throughput vs age |",
        "|---|---|---:|---:|---:|---:|",
    ]
    labels = {
        "age": f"age {age_version}, `-o`",
        "age, to stdout": f"age {age_version}, to stdout",
        "age, then sync": f"age {age_version}, `-o`, then `sync`",
        "vault": "vault, `-o` (fsync included)",
    }
    for item in series:
        age = by_key[(item.operation, _COMPARED_WITH[item.contender])]
        rows.append(
            f"| {item.operation} | {labels.get(item.contender, item.contender)} | "
            f"{item.median_seconds:.2f} s | "
            f"{size / item.median_seconds / 1e6:,.0f} MB/s | "
            f"{item.peak_rss_kib / 1024:.1f} MiB | "
            f"{age.median_seconds / item.median_seconds:.2f}x "
            f"({labels.get(age.contender, age.contender)}) |"
        )
    verdicts = [_verdicts(operation, by_key) for operation in ("encrypt", "decrypt")]
    fsyncs = [
        f"{operation} {by_key[(operation, 'vault')].median_fsync_seconds or 0:.3f} s"
        for operation in ("encrypt", "decrypt")
    ]
    durability = [
        f"{operation} {_durability_seconds(operation, by_key):+.2f} s"
        for operation in ("encrypt", "decrypt")
    ]
    runs = [
        f"- {item.operation}, {item.contender}: "
        + ", ".join(f"{run.seconds:.2f} s" for run in item.runs)
        for item in series
    ]
    size_argument = format_size(size).replace(" ", "")
    lines = [
        f"Input: {format_size(size)} of random data in a temporary directory. Each command "
        f"ran {REPEATS} times (median shown), rotating which went first, after a warm-up "
        "read of the input; `sync` ran before every run so none paid for another's disk "
        "writes. `-o` rows write the output file named; the `to stdout` rows write standard "
        "output redirected to a file in the same directory. Peak RSS is each process's "
        "maximum resident set size as GNU `time` reports it, the largest of the runs. "
        "Each row is compared with age writing the same way (named in brackets).",
        "",
        *rows,
        "",
        f"Target: at least {TARGET_RATIO}x age's throughput (stretch: 1.0x).",
        "",
        *[line for group in verdicts for line in group],
        "",
        "What `-o` costs: vault writes a temporary file, fsyncs it and renames it into "
        "place, so a failed or interrupted run never leaves a complete-looking file and a "
        "successful one is on disk when the command returns; age writes the final name "
        "directly and does not fsync. While vault writes, a background thread asks the "
        "kernel every 0.1 s to start writing the file out (`posix_fadvise(DONTNEED)`, which "
        "does not wait), so the disk works alongside the encryption and the final fsync "
        "waits only for the last part. The fsync's cost, shown separately: vault times its "
        "final fsync (with the rename and the folder's fsync) itself and prints it on "
        "stderr when `VAULT_REPORT_FSYNC` is set, median "
        + ", ".join(fsyncs)
        + "; everything durability costs, early writeback included, is the difference "
        "between vault's `-o` and `to stdout` rows: "
        + ", ".join(durability)
        + ". The `age -o, then sync` rows show what the same durability costs age "
        "(`sync` runs after age exits, so nothing overlaps it).",
        "",
        "Fixed cost per run, measured by encrypting an empty file with `-o` (median of "
        f"{REPEATS}): age {startup['age']:.2f} s, vault {startup['vault']:.2f} s. vault's "
        "is Python start-up and imports (`manage.py` runs these subcommands without "
        "setting up Django's apps, but importing Django's management package takes about "
        "0.07 s, and at exit `run_from_argv` closes database connections, which loads the "
        "settings and the Celery app they import, about 0.1 s); it is paid once per "
        "command, so it weighs less as files grow.",
        "",
        "Individual runs:",
        "",
        *runs,
        "",
        "Machine:",
        "",
        *machine_summary(),
        f"- Other work on the machine while the runs took place: {load}. It slows both "
        "tools and widens the spread of the individual runs above.",
        f"- age: {age_version} (`{_command_output(['sh', '-c', 'command -v age'])}`)",
        "",
        "Reproduce: `make bench` (all benchmarks), or this section alone with "
        f"`.venv/bin/python -m bench.run --only {SECTION_ID} --size {size_argument}`.",
    ]
    return "\n".join(lines)


def _durability_seconds(operation: str, by_key: dict[tuple[str, str], Series]) -> float:
    """What vault's ``-o`` costs over writing standard output: fsync, early writeback, rename."""
    return (
        by_key[(operation, "vault")].median_seconds
        - by_key[(operation, "vault, to stdout")].median_seconds
    )


def _verdicts(operation: str, by_key: dict[tuple[str, str], Series]) -> list[str]:
    """One line per way of comparing: to stdout, and ``-o`` against age with and without sync."""
    age = by_key[(operation, "age")].median_seconds
    age_stdout = by_key[(operation, "age, to stdout")].median_seconds
    age_synced = by_key[(operation, "age, then sync")].median_seconds
    vault = by_key[(operation, "vault")]
    vault_stdout = by_key[(operation, "vault, to stdout")].median_seconds
    comparisons = [
        ("to stdout, against age to stdout", age_stdout / vault_stdout),
        ("`-o` (durable), against age `-o` (not durable)", age / vault.median_seconds),
        ("`-o` (durable), against age `-o` then `sync`", age_synced / vault.median_seconds),
    ]
    return [
        f"- {operation}, {what}: {ratio:.2f}x, 0.8x {_verdict(ratio)}"
        + ("; 1.0x reached" if ratio >= 1.0 else "")
        + "."
        for what, ratio in comparisons
    ]


def _verdict(ratio: float) -> str:
    return "met" if ratio >= TARGET_RATIO else "**not met**"


class _OtherWork:
    """CPU time the machine spent on processes other than this benchmark's, from now on.

    Tells a quiet machine from a shared, busy one: all CPU time the kernel
    counted (``/proc/stat``) minus this process's and its children's.
    """

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._busy = _machine_busy_seconds()
        self._ours = _own_cpu_seconds()

    def summary(self) -> str:
        wall = time.perf_counter() - self._started
        ours = _own_cpu_seconds() - self._ours
        others = max(_machine_busy_seconds() - self._busy - ours, 0.0)
        return f"{others / wall:.2f} of {os.cpu_count()} cores busy on average"


def _machine_busy_seconds() -> float:
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    # The guest fields are already counted in user and nice.
    busy = sum(fields[:8]) - idle - iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    own = os.times()
    return own.user + own.system + own.children_user + own.children_system


def _write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as stream:
        remaining = size
        while remaining:
            block = os.urandom(min(_BLOCK, remaining))
            stream.write(block)
            remaining -= len(block)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _command_output(argv: Argv) -> str:
    result = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, check=True)
    return (result.stdout or result.stderr).strip()


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    from bench.run import main

    main(["--only", SECTION_ID, *sys.argv[1:]])
