"""Fail when any of our modules imports itself back, directly or through a loop.

Run as ``python tools/import_cycles.py`` (``make lint`` does). It builds the
import graph with grimp (the engine of import-linter) over every first-party
package, counting imports inside functions too, and prints each loop it finds
as a chain of modules. Migrations are left out: Django loads them on its own."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "accounts",
    "records",
    "billing",
    "transparency",
    "verification",
    "escrow",
    "portal",
    "notary_portal",
    "vault",
    "config",
)


def strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def edges(module: str) -> list[str]:
        return sorted(m for m in graph.find_modules_directly_imported_by(module) if m in modules)

    for start in sorted(modules):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges(node)
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            for target in targets:
                if target in on_stack:
                    low[node] = min(low[node], low[target])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges(node):
                    groups.append(sorted(group))
    return groups


def main() -> int:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    modules = {m for m in graph.modules if ".migrations" not in m}
    loops = strongly_connected(graph, modules)
    for group in loops:
        print("import loop:", " <-> ".join(group))
    print(f"import cycles: {len(loops)} loop(s) among {len(modules)} modules")
    return 1 if loops else 0


if __name__ == "__main__":
    sys.exit(main())
