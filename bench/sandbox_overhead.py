"""The overhead of the build verification sandbox on a trivial build.

Runs the build command ``true`` RUNS times through ``vault.build_sandbox.run_build``
(toolchain check, uid reservation, chown of the scratch, prlimit + bwrap + setpriv,
output capture, the kill-and-sweep of the build uid, artefact hashing of one
file), and the same ``/bin/sh -c 'true'`` RUNS times plainly with
``subprocess.run``; reports the median and p95 of each and their difference.
Needs root and bubblewrap, like the sandbox itself.

    .venv/bin/python -m bench.sandbox_overhead            # rewrites its section
    .venv/bin/python -m bench.sandbox_overhead --write -  # prints it instead

It also fits ``bench.run`` (``SECTION_ID``, ``TITLE``, ``run(size=, workdir=)``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import django

from bench.run import DEFAULT_DOCUMENT, Section, machine_summary, write_sections

SECTION_ID = "sandbox-overhead"
TITLE = "Build verification sandbox overhead"
RUNS = 20
COMMAND = "true"


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(workdir: Path, runs: int = RUNS) -> tuple[list[float], list[float]]:
    """Seconds per run: (sandboxed, plain)."""
    from vault.build_recipe import Recipe
    from vault.build_sandbox import SandboxLimits, run_build, sandbox_available

    reason = sandbox_available()
    if reason is not None:
        raise SystemExit(f"the sandbox cannot run here: {reason}")
    recipe = Recipe(command=f"{COMMAND} && : > out", artefacts=("out",), time_limit_seconds=60)
    limits = SandboxLimits.from_settings(recipe)
    sandboxed: list[float] = []
    plain: list[float] = []
    for index in range(runs + 1):
        source = workdir / f"src-{index}"
        source.mkdir()
        started = time.perf_counter()
        result = run_build(source, recipe, limits)
        elapsed = time.perf_counter() - started
        if result.outcome != "passed":
            raise SystemExit(f"the trivial build did not pass: {result.log_tail}")
        started = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", recipe.command], cwd=source, check=True)
        plain_elapsed = time.perf_counter() - started
        if index:  # the first run warms the page cache; it is not counted
            sandboxed.append(elapsed)
            plain.append(plain_elapsed)
    return sandboxed, plain


def run(*, size: int = 0, workdir: Path) -> Section:
    """Measure and return the section (``size`` is unused: the build is trivial)."""
    _setup_django()
    load_before = os.getloadavg()
    sandboxed, plain = measure(workdir)
    load_after = os.getloadavg()
    median_s, p95_s = statistics.median(sandboxed), _percentile(sandboxed, 0.95)
    median_p, p95_p = statistics.median(plain), _percentile(plain, 0.95)
    ms = 1000
    lines = [
        f"A trivial build (`{COMMAND}`, then one artefact written) through "
        "`vault.build_sandbox.run_build` against the same `/bin/sh -c` run plainly "
        f"with `subprocess.run`, {RUNS} runs each after one warm-up run.",
        "",
        *machine_summary(),
        f"- nproc: {os.cpu_count()}; uname -r: `{platform.release()}`",
        f"- bwrap: `{_first_line(['bwrap', '--version'])}`",
        "- Load average (1, 5, 15 min) before and after measuring: "
        f"{_load(load_before)} and {_load(load_after)}",
        "",
        "| run | median | p95 |",
        "| --- | ---: | ---: |",
        f"| sandboxed (`run_build`) | {median_s * ms:.1f} ms | {p95_s * ms:.1f} ms |",
        f"| plain (`subprocess.run`) | {median_p * ms:.1f} ms | {p95_p * ms:.1f} ms |",
        f"| overhead | {(median_s - median_p) * ms:.1f} ms | {(p95_s - p95_p) * ms:.1f} ms |",
        "",
        "The overhead is per build, not per process inside it: a real build of "
        "minutes pays it once. It covers the toolchain check, the sandbox probe "
        "(`sandbox_available` starts bwrap once more), the build's memory cgroup, "
        "the namespaces and mounts, "
        "and the sweep that confirms no process of the build uid is left.",
        "",
        "Command: `.venv/bin/python -m bench.sandbox_overhead` (as root).",
    ]
    return Section(SECTION_ID, TITLE, "\n".join(lines) + "\n")


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _first_line(argv: list[str]) -> str:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (completed.stdout or completed.stderr).strip().splitlines()[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_overhead", description=__doc__)
    parser.add_argument("--write", default=str(DEFAULT_DOCUMENT), metavar="PATH")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as workdir:
        section = run(workdir=Path(workdir))
    if options.write == "-":
        print(section.render())
    else:
        write_sections(Path(options.write), [section])
        print(f"wrote {options.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
