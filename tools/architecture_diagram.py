"""Draw the layer diagram of docs/architecture.md from the import-linter contract.

``python tools/architecture_diagram.py`` prints it; tests/test_architecture_doc.py
fails when the diagram in the document differs from what this draws, so the
picture cannot drift from the contract that `make lint` enforces."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- layers: drawn by tools/architecture_diagram.py; do not edit by hand -->"
END = "<!-- /layers -->"


def contract_layers(pyproject: Path = ROOT / "pyproject.toml") -> list[list[str]]:
    """The layers contract, top first; each layer a list of independent siblings."""
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    (layers,) = (c["layers"] for c in config["contracts"] if c["type"] == "layers")
    return [[name.strip() for name in layer.split("|")] for layer in layers]


def draw(layers: list[list[str]]) -> str:
    """One row per layer, independent siblings side by side, arrows pointing down."""
    width = max(len("    ".join(f"[ {n} ]" for n in layer)) for layer in layers)
    lines = []
    for position, layer in enumerate(layers):
        row = "    ".join(f"[ {name} ]" for name in layer)
        lines.append(row.center(width).rstrip())
        if position < len(layers) - 1:
            lines.append("|".center(width).rstrip())
            lines.append("v".center(width).rstrip())
    return "\n".join(lines)


def block() -> str:
    return f"{BEGIN}\n```text\n{draw(contract_layers())}\n```\n{END}"


if __name__ == "__main__":
    print(block())
