"""Throughput and peak memory of ``manage.py vault encrypt/decrypt`` next to the age tool.

One run, side by side: ``age -r`` against ``vault encrypt -r`` and ``age -d``
against ``vault decrypt``, each repeated REPEATS times (median kept), on a
random file of ``--size`` bytes (1 GiB by default) that was read once first
so every tool starts from a warm page cache. vault runs twice per round: with
``-o FILE`` (temporary file, fsync, rename) and writing to standard output
redirected to a file, which shows what the safe ``-o`` path costs. The target
is at least TARGET_RATIO times age's throughput.

    .venv/bin/python -m bench.age_throughput --size 1GiB       # this section only
"""

from __future__ import annotations

import hashlib
import os
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
REPEATS = 3
TARGET_RATIO = 0.8
#: GNU time, for each child's peak RSS (Debian package `time`).
TIME = "/usr/bin/time"
_BLOCK = 16 * 1024 * 1024

Argv = Sequence[str | Path]


@dataclass(frozen=True)
class Contender:
    """One way of running an operation: ``argv`` lacks the output and the input."""

    name: str
    argv: Argv
    to_stdout: bool = False

    def command(self, source: Path, output: Path) -> list[str | Path]:
        return [*self.argv, source] if self.to_stdout else [*self.argv, "-o", output, source]


@dataclass(frozen=True)
class Run:
    """One timed child process: wall time and its own peak resident set size."""

    seconds: float
    peak_rss_kib: int


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
    return Run(seconds=seconds, peak_rss_kib=peak_rss_kib)


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

    plain = workdir / "plain.bin"
    reference = workdir / "reference.age"
    _log(f"writing {format_size(size)} of random data")
    _write_random_file(plain, size)
    expected = _sha256(plain)  # also the warm-up read that puts the input in the page cache
    timed(["age", "-r", recipient, "-o", reference, plain])
    _sha256(reference)  # warms the decryption input too

    operations = {
        "encrypt": (
            plain,
            [
                Contender("age", ["age", "-r", recipient]),
                Contender("vault", [*vault, "encrypt", "-r", recipient]),
                Contender("vault, to stdout", [*vault, "encrypt", "-r", recipient], True),
            ],
        ),
        "decrypt": (
            reference,
            [
                Contender("age", ["age", "-d", "-i", key]),
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
        for contender in operations["encrypt"][1][:2]
    }
    age_version = _command_output(["age", "--version"])
    return Section(SECTION_ID, TITLE, _render(size, series, startup, age_version))


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


def _render(size: int, series: list[Series], startup: dict[str, float], age_version: str) -> str:
    by_key = {(item.operation, item.contender): item for item in series}
    rows = [
        "| Operation | Tool | Median wall time | Throughput | Peak RSS | Throughput vs age |",
        "|---|---|---:|---:|---:|---:|",
    ]
    labels = {"age": f"age {age_version}, `-o`", "vault": "vault, `-o`"}
    for item in series:
        age = by_key[(item.operation, "age")]
        rows.append(
            f"| {item.operation} | {labels.get(item.contender, item.contender)} | "
            f"{item.median_seconds:.2f} s | "
            f"{size / item.median_seconds / 1e6:,.0f} MB/s | "
            f"{item.peak_rss_kib / 1024:.1f} MiB | "
            f"{age.median_seconds / item.median_seconds:.2f}x |"
        )
    verdicts = []
    for operation in ("encrypt", "decrypt"):
        age, vault = by_key[(operation, "age")], by_key[(operation, "vault")]
        whole = age.median_seconds / vault.median_seconds
        verdict = f"- {operation} (`-o`): {_verdict(whole)} end to end ({whole:.2f}x)"
        streaming_seconds = vault.median_seconds - startup["vault"]
        if streaming_seconds > 0:
            streaming = (age.median_seconds - startup["age"]) / streaming_seconds
            verdict += f"; {_verdict(streaming)} with the fixed start-up costs taken out"
            verdict += f" ({streaming:.2f}x)"
        verdicts.append(verdict + ".")
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
        "maximum resident set size as GNU `time` reports it, the largest of the runs.",
        "",
        *rows,
        "",
        f"Target: at least {TARGET_RATIO}x age's throughput.",
        "",
        *verdicts,
        "",
        "Fixed cost per run, measured by encrypting an empty file (median of "
        f"{REPEATS}): age {startup['age']:.2f} s, vault {startup['vault']:.2f} s. vault's "
        "is Python start-up and imports (`manage.py` runs these subcommands without "
        "setting up Django's apps); it is paid once per command, so it weighs less as "
        "files grow.",
        "",
        "What `-o` costs: vault writes a temporary file, fsyncs it and renames it into "
        "place, so a failed or interrupted run never leaves a complete-looking file and a "
        "successful one is on disk when the command returns; age writes the final name "
        "directly and does not fsync. The difference between the `-o` and `to stdout` rows "
        "is that cost.",
        "",
        "Individual runs:",
        "",
        *runs,
        "",
        "Machine:",
        "",
        *machine_summary(),
        f"- age: {age_version} (`{_command_output(['sh', '-c', 'command -v age'])}`)",
        "",
        "Reproduce: `make bench` (all benchmarks), or this section alone with "
        f"`.venv/bin/python -m bench.run --only {SECTION_ID} --size {size_argument}`.",
    ]
    return "\n".join(lines)


def _verdict(ratio: float) -> str:
    return "met" if ratio >= TARGET_RATIO else "**not met**"


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
