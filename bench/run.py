"""Run the benchmarks and rewrite their sections of docs/benchmarks.md.

    .venv/bin/python -m bench.run                      # every benchmark, 1 GiB inputs
    .venv/bin/python -m bench.run --only age-throughput --size 256MiB --write -

Each benchmark is a module listed in BENCHMARKS with a ``SECTION_ID`` and a
``run(*, size, workdir) -> Section``. The document is rewritten section by
section: a run replaces only the sections it measured, so the others keep
their last numbers (or their "not measured yet" placeholder).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DOCUMENT = REPO / "docs" / "benchmarks.md"
DEFAULT_SIZE = 1024**3

#: Benchmark modules run by ``make bench``, in document order.
BENCHMARKS: tuple[str, ...] = (
    "bench.age_throughput",
    "bench.deposit_upload",
    "bench.work_floor",
    "bench.upload_memory",
    "bench.sandbox_overhead",
)

#: Sections that no benchmark writes any more, because they described a system that
#: is gone; writing the document removes them (markers and all).
RETIRED: tuple[str, ...] = (
    # deposit_receive in-process, step by step: the multi-pass intake (now deposit-upload).
    "sealing-throughput",
    # its memory in-process (now web-upload-rss, at two sizes through gunicorn).
    "sealing-peak-rss",
)

INTRODUCTION = """\
# Benchmarks

Measured by hand with `make bench`, never in the test suite. Each `##` section
is written by one module in `bench/` (see `bench/README.md`) and records the
machine it ran on, so sections measured on different days stay honest.
`make bench` reruns every benchmark and rewrites only the sections between
their `<!-- bench:... -->` markers; text outside the markers is kept.
"""


@dataclass(frozen=True)
class Section:
    """One ``##`` section of docs/benchmarks.md, identified by ``id``."""

    id: str
    title: str
    body: str

    def render(self) -> str:
        """The section with its markers, heading and body."""
        return (
            f"<!-- bench:{self.id} -->\n## {self.title}\n\n{self.body.strip()}\n"
            f"<!-- /bench:{self.id} -->\n"
        )


_SECTION = re.compile(
    r"<!-- bench:(?P<id>[\w-]+) -->\n## (?P<title>[^\n]*)\n(?P<body>.*?)<!-- /bench:(?P=id) -->\n?",
    re.DOTALL,
)


def read_document(text: str) -> tuple[str, list[Section]]:
    """Split a benchmarks document into the text before its sections and the sections."""
    first = _SECTION.search(text)
    preamble = text[: first.start()] if first else text
    sections = [
        Section(match["id"], match["title"], match["body"]) for match in _SECTION.finditer(text)
    ]
    return preamble, sections


def update_document(
    text: str,
    measured: Sequence[Section],
    *,
    expected: Sequence[Section] = (),
    retired: Sequence[str] = RETIRED,
) -> str:
    """Return ``text`` with the ``measured`` sections replaced or added.

    Sections not measured keep their content; ``retired`` ones are removed.
    ``expected`` holds a placeholder for every benchmark's section, in document
    order; those missing from the document are added. A section new to the
    document goes right after the one that precedes it in ``expected``, so the
    document keeps the benchmarks' order.
    """
    preamble, sections = read_document(text)
    by_id = {section.id: section for section in sections if section.id not in retired}
    order = [section.id for section in sections if section.id in by_id]
    known = [section.id for section in expected]
    for section in [*measured, *expected]:
        if section.id not in by_id:
            order.insert(_position(section.id, order, known), section.id)
            by_id[section.id] = section
    for section in measured:
        by_id[section.id] = section
    head = preamble.strip() or INTRODUCTION.strip()
    return head + "\n\n" + "\n".join(by_id[section_id].render() for section_id in order)


def _position(section_id: str, order: list[str], known: list[str]) -> int:
    """Where a section new to the document goes: after the nearest section that
    ``known`` lists before it, else before the nearest it lists after it, else last."""
    if section_id not in known:
        return len(order)
    rank = known.index(section_id)
    for earlier in reversed(known[:rank]):
        if earlier in order:
            return order.index(earlier) + 1
    for later in known[rank + 1 :]:
        if later in order:
            return order.index(later)
    return len(order)


def placeholder(module: ModuleType) -> Section:
    """What a benchmark's section says before it was first measured."""
    command = f"`.venv/bin/python -m bench.run --only {module.SECTION_ID}`"
    title = getattr(module, "TITLE", module.SECTION_ID)
    return Section(module.SECTION_ID, title, f"Not measured yet: run {command}.\n")


def write_sections(
    path: Path, measured: Sequence[Section], *, expected: Sequence[Section] = ()
) -> None:
    """Rewrite the ``measured`` sections of the document at ``path`` (see ``update_document``)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(update_document(existing, measured, expected=expected), encoding="utf-8")


def machine_summary() -> list[str]:
    """Markdown bullet lines describing this machine and the date."""
    memory_kib = _proc_field("/proc/meminfo", "MemTotal", default="0 kB").split()[0]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- CPU: {_proc_field('/proc/cpuinfo', 'model name', default=platform.processor())}, "
        f"{os.cpu_count()} cores ({usable} usable by this process)",
        f"- RAM: {int(memory_kib) / 1024**2:.1f} GiB",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()} ({sys.executable})",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    ]


def _proc_field(path: str, name: str, *, default: str) -> str:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return default
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return default


_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """Parse ``1GiB``, ``512M``, ``4G`` or a plain byte count (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB or 256MiB)")
    return int(match[1]) * _UNITS[match[2]]


def format_size(size: int) -> str:
    """``1073741824`` -> ``1 GiB``; sizes that are not whole units stay in bytes."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def _load(module_name: str) -> ModuleType:
    return importlib.import_module(module_name)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the selected benchmarks and write their sections."""
    modules = [_load(name) for name in BENCHMARKS]
    ids = [module.SECTION_ID for module in modules]
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, help="default 1GiB")
    parser.add_argument("--only", action="append", choices=ids, help="run only this benchmark")
    parser.add_argument(
        "--write",
        default=str(DEFAULT_DOCUMENT),
        metavar="PATH",
        help="document to update (default docs/benchmarks.md); '-' prints the sections instead",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the large temporary files go (default: $TMPDIR)"
    )
    options = parser.parse_args(argv)

    measured: list[Section] = []
    for module in modules:
        if options.only and module.SECTION_ID not in options.only:
            continue
        print(f"== {module.SECTION_ID} ({format_size(options.size)})", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="bench-", dir=options.workdir) as workdir:
            measured.append(module.run(size=options.size, workdir=Path(workdir)))
    if options.write == "-":
        print("\n".join(section.render() for section in measured))
    else:
        expected = [placeholder(module) for module in modules]
        write_sections(Path(options.write), measured, expected=expected)
        print(f"wrote {options.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
