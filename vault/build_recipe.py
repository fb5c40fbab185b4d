"""The build recipe: how to rebuild a deposit, declared in ``escrow.toml``.

A vendor keeps the recipe at the archive root (``source="archive"``) or sets
the same text per product in the portal (``source="product"``). The format is
small on purpose, so that every field can be checked before anything runs::

    [build]
    command = "make"             # run by /bin/sh -c in the source root
    artefacts = ["build/app"]    # paths or globs relative to the source root
    time_limit = 600             # seconds, optional, 1..ESCROW_VERIFY_MAX_SECONDS

    [toolchain]                  # optional: tool name = version requirement
    gcc = ">=12"
    make = "*"

A version requirement is ``*`` (any version, but the tool must exist) or one
operator (``>=``, ``<=``, ``>``, ``<``, ``==``, ``~=``) followed by a dotted
version such as ``12`` or ``3.11.4``. ``~=`` is "compatible release":
``~=3.11`` means >= 3.11 and < 4, ``~=3.11.2`` means >= 3.11.2 and < 3.12,
and (unlike PEP 440) ``~=20`` is allowed and means any 20.x. Anything else, an unknown key, or a
value of the wrong type raises ``RecipeError`` naming the field, so a vendor
learns what to fix before a build is attempted.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from django.conf import settings

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "MAX_ARTEFACTS",
    "MAX_COMMAND_LENGTH",
    "RECIPE_FILE",
    "Recipe",
    "RecipeError",
    "holds_recipe_file",
    "max_time_limit",
    "parse_recipe",
    "parse_version_spec",
]

RECIPE_FILE = "escrow.toml"
DEFAULT_TIME_LIMIT = 600
MAX_COMMAND_LENGTH = 4096
MAX_ARTEFACTS = 100
MAX_ARTEFACT_LENGTH = 1024
MAX_TOOLS = 32
MAX_RECIPE_BYTES = 64 * 1024
SOURCES = ("archive", "product")

# Tool names are looked up on PATH: a bare program name, nothing path-like.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_VERSION_SPEC = re.compile(r"^(>=|<=|==|~=|>|<)\s*(\d+(?:\.\d+){0,3})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BUILD_KEYS = frozenset({"command", "artefacts", "time_limit"})
_TOP_KEYS = frozenset({"build", "toolchain"})


class RecipeError(ValueError):
    """The recipe cannot be used; the message names the field and the problem."""


@dataclass(frozen=True)
class Recipe:
    """A checked build recipe. ``toolchain`` is read-only (tool -> version spec)."""

    command: str
    artefacts: tuple[str, ...]
    time_limit_seconds: int = DEFAULT_TIME_LIMIT
    toolchain: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    source: str = "archive"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored on the verification record."""
        return {
            "command": self.command,
            "artefacts": list(self.artefacts),
            "time_limit_seconds": self.time_limit_seconds,
            "toolchain": dict(self.toolchain),
            "source": self.source,
        }


def max_time_limit() -> int:
    """The largest ``time_limit`` a recipe may ask for (settings, default 1800 s)."""
    return int(getattr(settings, "ESCROW_VERIFY_MAX_SECONDS", 1800))


def parse_recipe(text: str, *, source: str = "archive") -> Recipe:
    """Parse and check ``escrow.toml`` text; raise ``RecipeError`` naming the field."""
    if source not in SOURCES:
        raise RecipeError(f"source: must be one of {', '.join(SOURCES)}, not {source!r}")
    if not isinstance(text, str):
        raise RecipeError(f"{RECIPE_FILE}: expected text, got {type(text).__name__}")
    if len(text.encode("utf-8", errors="replace")) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{RECIPE_FILE}: larger than {MAX_RECIPE_BYTES // 1024} KiB")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{RECIPE_FILE}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RecipeError(f"{unknown[0]}: unknown section or key (allowed: [build], [toolchain])")
    build = data.get("build")
    if build is None:
        raise RecipeError("[build]: missing section")
    if not isinstance(build, dict):
        raise RecipeError("[build]: must be a table")
    unknown = sorted(set(build) - _BUILD_KEYS)
    if unknown:
        raise RecipeError(
            f"build.{unknown[0]}: unknown key (allowed: {', '.join(sorted(_BUILD_KEYS))})"
        )
    return Recipe(
        command=_command(build.get("command")),
        artefacts=_artefacts(build.get("artefacts")),
        time_limit_seconds=_time_limit(build.get("time_limit", DEFAULT_TIME_LIMIT)),
        toolchain=MappingProxyType(_toolchain(data.get("toolchain", {}))),
        source=source,
    )


def parse_version_spec(spec: str) -> tuple[str, tuple[int, ...]] | None:
    """``"*"`` -> None; ``">=12.1"`` -> (">=", (12, 1)); else ``RecipeError``."""
    spec = spec.strip()
    if spec == "*":
        return None
    match = _VERSION_SPEC.match(spec)
    if match is None:
        raise RecipeError(
            f"version spec {spec!r}: expected '*' or an operator (>=, <=, >, <, ==, ~=) "
            "and a dotted version such as '>=12' or '==3.11'"
        )
    version = tuple(int(part) for part in match.group(2).split("."))
    return match.group(1), version


def _command(value: object) -> str:
    if value is None:
        raise RecipeError("build.command: missing (the shell command that builds the source)")
    if not isinstance(value, str):
        raise RecipeError(f"build.command: must be a string, not {_type_name(value)}")
    if not value.strip():
        raise RecipeError("build.command: is empty")
    if len(value) > MAX_COMMAND_LENGTH:
        raise RecipeError(f"build.command: longer than {MAX_COMMAND_LENGTH} characters")
    if "\x00" in value:
        raise RecipeError("build.command: contains a NUL character")
    return value


def _artefacts(value: object) -> tuple[str, ...]:
    if value is None:
        raise RecipeError("build.artefacts: missing (the files the build must produce)")
    if not isinstance(value, list):
        raise RecipeError(f"build.artefacts: must be an array of strings, not {_type_name(value)}")
    if not value:
        raise RecipeError("build.artefacts: is empty (name at least one file the build produces)")
    if len(value) > MAX_ARTEFACTS:
        raise RecipeError(f"build.artefacts: more than {MAX_ARTEFACTS} entries")
    seen: list[str] = []
    for index, item in enumerate(value):
        name = f"build.artefacts[{index}]"
        if not isinstance(item, str):
            raise RecipeError(f"{name}: must be a string, not {_type_name(item)}")
        if not item.strip():
            raise RecipeError(f"{name}: is empty")
        if len(item) > MAX_ARTEFACT_LENGTH:
            raise RecipeError(f"{name}: longer than {MAX_ARTEFACT_LENGTH} characters")
        if _CONTROL.search(item):
            raise RecipeError(f"{name}: contains a control character")
        if item.startswith("/") or item.startswith("\\") or re.match(r"^[A-Za-z]:", item):
            raise RecipeError(f"{name}: {item!r} is absolute; give a path relative to the source")
        parts = re.split(r"[/\\]", item)
        if ".." in parts:
            raise RecipeError(f"{name}: {item!r} contains '..'; artefacts stay inside the source")
        if item not in seen:
            seen.append(item)
    return tuple(seen)


def _time_limit(value: object) -> int:
    # bool is an int subclass in Python: "time_limit = true" is not a number of seconds.
    if isinstance(value, bool) or not isinstance(value, int):
        kind = _type_name(value)
        raise RecipeError(f"build.time_limit: must be an integer (seconds), not {kind}")
    if value <= 0:
        raise RecipeError(f"build.time_limit: must be at least 1 second, not {value}")
    limit = max_time_limit()
    if value > limit:
        raise RecipeError(f"build.time_limit: {value} s is above the maximum of {limit} s")
    return value


def _toolchain(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RecipeError(f"[toolchain]: must be a table, not {_type_name(value)}")
    if len(value) > MAX_TOOLS:
        raise RecipeError(f"[toolchain]: more than {MAX_TOOLS} tools")
    tools: dict[str, str] = {}
    for tool, spec in value.items():
        name = f"toolchain.{tool}"
        if not _TOOL_NAME.match(tool):
            raise RecipeError(f"{name}: not a program name (letters, digits, '_.+-')")
        if not isinstance(spec, str):
            raise RecipeError(f"{name}: version spec must be a string, not {_type_name(spec)}")
        try:
            parse_version_spec(spec)
        except RecipeError as exc:
            raise RecipeError(f"{name}: {exc}") from None
        tools[tool] = spec.strip()
    return tools


def _type_name(value: object) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def holds_recipe_file(names: Iterable[str], name: str = RECIPE_FILE) -> bool:
    """Whether one of an archive's member ``names`` is ``name`` at the root or one folder
    down: where the source root that ``vault.build_sandbox.unpack_source`` finds can put
    it. Only names are looked at (a folder or a link of that name counts too), so the
    answer may be yes for an archive that turns out to hold no usable recipe, never no
    for one that does."""
    for member in names:
        parts = [part for part in PurePosixPath(member.replace("\\", "/")).parts if part != "."]
        if 1 <= len(parts) <= 2 and parts[-1] == name:
            return True
    return False
