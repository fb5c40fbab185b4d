"""Peak memory of sealing: ``deposit_receive`` on a ``--size`` and a 4x ``--size`` plain tar.

Sealing must run in constant memory: a 4 GiB archive may cost no more than a
1 GiB one, and neither more than TARGET_MIB. Each size is one child process
(``python -m bench.escrow_env seal``) against a throwaway installation with a
single local site. The child reports its own ``VmRSS`` and ``VmHWM`` once
Django is set up and warm (the baseline: what any process of the app costs),
then ``VmHWM`` and ``ru_maxrss`` after sealing; GNU ``time`` reports the peak
from outside too. Nothing is subtracted: the peak is the whole process's.

    .venv/bin/python -m bench.seal_memory --size 1GiB       # 1 GiB and 4 GiB
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench.escrow_env import SealRun, create, load_average, log, require_tools, seal, write_tar
from bench.run import Section, format_size, machine_summary

SECTION_ID = "sealing-peak-rss"
TARGET_MIB = 100
#: "About the same": the larger archive's peak may exceed the smaller's by this much.
CONSTANT_TOLERANCE_MIB = 5
#: The archive, the intake copy and the outbox (then the stored copy) exist at once.
_DISK_FACTOR = 3.2


def run(*, size: int, workdir: Path) -> Section:
    """Seal a ``size`` and a ``4 * size`` plain tar, one child process each; return the section."""
    require_tools()
    sizes = (size, 4 * size)
    free = shutil.disk_usage(workdir).free
    if free < _DISK_FACTOR * sizes[-1]:
        raise RuntimeError(
            f"{workdir} has {format_size(free)} free; sealing {format_size(sizes[-1])} needs "
            f"about {_DISK_FACTOR * sizes[-1] / 1024**3:.0f} GiB (try --workdir)"
        )
    load_before = load_average()
    log("setting up a throwaway installation with one site")
    escrow = create(workdir / "installation", single_site=True)
    runs: list[tuple[int, SealRun]] = []
    for number, archive_size in enumerate(sizes):
        archive = workdir / "archive.tar"
        log(f"writing a {format_size(archive_size)} plain tar")
        sha256 = write_tar(archive, archive_size)
        log(f"sealing {format_size(archive_size)}")
        result = seal(escrow, archive, version=f"3.{number}.0", sha256=sha256, scratch=workdir)
        runs.append((archive_size, result))
        # Free the disk before the next, larger archive.
        archive.unlink()
        escrow.clear_sites()
    title = f"Sealing peak RSS at {format_size(sizes[0])} and {format_size(sizes[1])}"
    return Section(
        SECTION_ID, title, _render(size, runs, escrow.sites_label, (load_before, load_average()))
    )


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def _render(size: int, runs: list[tuple[int, SealRun]], sites: str, loads: tuple[str, str]) -> str:
    rows = [
        "| Archive | Baseline VmRSS (Django set up) | Peak VmHWM | Added by sealing | "
        "Peak (GNU `time`) | `ru_maxrss` | Call | Within target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for archive_size, result in runs:
        peak = max(result.peak_hwm_kib, result.time_peak_kib)
        within = "yes" if peak <= TARGET_MIB * 1024 else "**no**"
        added = result.peak_hwm_kib - result.baseline_rss_kib
        rows.append(
            f"| {format_size(archive_size)} | {_mib(result.baseline_rss_kib)} | "
            f"{_mib(result.peak_hwm_kib)} | {_mib(added)} | "
            f"{_mib(result.time_peak_kib)} | {_mib(result.ru_maxrss_kib)} | "
            f"{result.seconds:.1f} s | {within} |"
        )
    peaks = [max(result.peak_hwm_kib, result.time_peak_kib) for _size, result in runs]
    under = all(peak <= TARGET_MIB * 1024 for peak in peaks)
    growth = (peaks[-1] - peaks[0]) / 1024
    constant = growth <= CONSTANT_TOLERANCE_MIB
    verdict = "met" if under and constant else "**not met**"
    reasons = []
    if not under:
        reasons.append(f"a peak is above {TARGET_MIB} MiB")
    if not constant:
        reasons.append(
            f"the {format_size(runs[-1][0])} peak is {growth:.1f} MiB above the "
            f"{format_size(runs[0][0])} one, so memory grows with the archive"
        )
    because = f" ({'; '.join(reasons)})" if reasons else ""
    size_argument = format_size(size).replace(" ", "")
    lines = [
        "Each archive is a plain tar of a few hundred incompressible members (one in four "
        "source-like text), sealed once by `deposit_receive` in its own child process "
        f"against a throwaway installation (SQLite, tasks in-process) with {sites}. "
        "Baseline: the child's `VmRSS` after Django set-up, a recipients query and the "
        "imports a deposit needs, just before the call. Peak: the child's `VmHWM` after the "
        "call (the high-water mark of its own memory, start-up included); GNU `time` and "
        "`ru_maxrss` report the same peak from outside and inside. Nothing is subtracted; "
        "the `Added by sealing` column is the peak minus the baseline.",
        "",
        *rows,
        "",
        f"Target: at most {TARGET_MIB} MiB for each size, and about the same for both "
        f"(within {CONSTANT_TOLERANCE_MIB} MiB): {verdict}{because}. The larger archive's "
        f"peak is {growth:+.1f} MiB against the smaller's.",
        "",
        "Machine:",
        "",
        *machine_summary(),
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
