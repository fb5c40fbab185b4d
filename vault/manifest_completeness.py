"""Is this deposit enough to rebuild the product? A summary for the manifest.

Judged from member names only (content is never re-read), except pip
requirements files, which count as lock files when inspection found every
version pinned in them (``ArchiveReport.pinned_requirements``).

Files are recognised at any depth, because archives usually wrap everything
in one top directory (``product-1.2/``); the summary lists the matches at the
shallowest depth, which are the project's own. Matches inside dependency
folders (``node_modules/``, ``vendor/``, ...) belong to the dependencies and
are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

from vault.archive import ArchiveMember, ArchiveReport
from vault.archive_checks import is_requirements_file

TOP_EXTENSIONS = 10
MAX_LISTED = 20

BUILD_FILE_NAMES = frozenset(
    {
        "Makefile", "makefile", "GNUmakefile", "CMakeLists.txt", "meson.build", "configure",
        "configure.ac", "SConstruct", "build.gradle", "build.gradle.kts", "settings.gradle",
        "settings.gradle.kts", "pom.xml", "build.xml", "build.sbt", "package.json",
        "pyproject.toml", "setup.py", "setup.cfg", "Cargo.toml", "go.mod", "Gemfile",
        "Rakefile", "composer.json", "mix.exs", "rebar.config", "BUILD", "BUILD.bazel",
        "WORKSPACE", "WORKSPACE.bazel", "MODULE.bazel", "Package.swift", "Podfile",
        "project.pbxproj", "pubspec.yaml", "stack.yaml", "dune-project", "project.clj",
        "deps.edn", "build.zig", "deno.json", "flake.nix", "Dockerfile", "Makefile.PL",
        "Build.PL", "justfile", "Justfile",
    }
)  # fmt: skip
BUILD_FILE_SUFFIXES = (
    ".csproj", ".fsproj", ".vbproj", ".vcxproj", ".sln", ".gemspec", ".cabal", ".nimble",
    ".rockspec",
)  # fmt: skip
LOCK_FILE_NAMES = frozenset(
    {
        "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock",
        "bun.lockb", "deno.lock", "poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock",
        "pixi.lock", "conda-lock.yml", "Cargo.lock", "go.sum", "Gemfile.lock",
        "composer.lock", "gradle.lockfile", "packages.lock.json", "paket.lock", "mix.lock",
        "rebar.lock", "Podfile.lock", "Package.resolved", "pubspec.lock", "flake.lock",
        "MODULE.bazel.lock", "conan.lock", "cabal.project.freeze", "stack.yaml.lock",
        "Manifest.toml", "renv.lock", "shard.lock",
    }
)  # fmt: skip
LOCK_FILE_SUFFIXES = (".lockfile",)  # Gradle writes one per configuration
LICENCE_STEMS = ("license", "licence", "copying", "unlicense")
DEPENDENCY_FOLDERS = frozenset(
    {"node_modules", "bower_components", "site-packages", "vendor", ".git"}
)

NO_BUILD_FILE = (
    "No build file found (such as a Makefile, pyproject.toml, package.json or pom.xml): "
    "whoever rebuilds this deposit will have to work out how."
)
NO_LOCK_FILE = "No dependency lock file: a rebuild may pull different library versions."
UNPINNED_REQUIREMENTS = (
    "No dependency lock file, and the requirements files found do not pin every version "
    "(name==version): a rebuild may pull different library versions."
)
NO_README = "No README found: the deposit carries no instructions for building or running it."
NO_LICENCE = (
    "No licence file (LICENSE, LICENCE or COPYING) found: the terms under which the code "
    "may be used are not part of the deposit."
)


def completeness(report: ArchiveReport) -> dict[str, Any]:
    """File count and sizes, which rebuild essentials are present, and a
    human warning for each one that is missing."""
    files = [m for m in report.members if m.kind == "file"]
    own_files = [m for m in files if not _in_dependency_folder(m.path)]
    pinned = set(report.pinned_requirements)
    requirements = [m for m in own_files if is_requirements_file(m.path)]

    build = _found(own_files, _is_build_file)
    locks = _found(own_files, lambda m: _is_lock_file(m) or m.path in pinned)
    readme = _found(own_files, lambda m: _basename(m).lower().startswith("readme"))
    licence = _found(own_files, _is_licence)

    warnings = []
    if not build["present"]:
        warnings.append(NO_BUILD_FILE)
    if not locks["present"]:
        warnings.append(UNPINNED_REQUIREMENTS if requirements else NO_LOCK_FILE)
    if not readme["present"]:
        warnings.append(NO_README)
    if not licence["present"]:
        warnings.append(NO_LICENCE)
    return {
        "files": len(files),
        "total_size": sum(m.size for m in files),
        "size_by_extension": _size_by_extension(files),
        "build_files": build,
        "lock_files": locks,
        "readme": readme,
        "licence": licence,
        "warnings": warnings,
    }


def _found(
    files: Iterable[ArchiveMember], matches: Callable[[ArchiveMember], bool]
) -> dict[str, Any]:
    paths = [m.path for m in files if matches(m)]
    if not paths:
        return {"present": False, "count": 0, "nearest": []}
    shallowest = min(path.count("/") for path in paths)
    nearest = sorted(path for path in paths if path.count("/") == shallowest)
    return {"present": True, "count": len(paths), "nearest": nearest[:MAX_LISTED]}


def _size_by_extension(files: list[ArchiveMember]) -> list[dict[str, Any]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for member in files:
        suffix = PurePosixPath(member.path).suffix.lower() or "(none)"
        totals[suffix][0] += 1
        totals[suffix][1] += member.size
    ranked = sorted(totals.items(), key=lambda item: (-item[1][1], item[0]))
    rows: list[dict[str, Any]] = [
        {"extension": ext, "files": n, "size": size} for ext, (n, size) in ranked
    ]
    if len(rows) <= TOP_EXTENSIONS:
        return rows
    rest = rows[TOP_EXTENSIONS:]
    other = {
        "extension": "other",
        "files": sum(row["files"] for row in rest),
        "size": sum(row["size"] for row in rest),
    }
    return [*rows[:TOP_EXTENSIONS], other]


def _basename(member: ArchiveMember) -> str:
    return member.path.rsplit("/", 1)[-1]


def _in_dependency_folder(path: str) -> bool:
    return any(part in DEPENDENCY_FOLDERS for part in path.split("/")[:-1])


def _is_build_file(member: ArchiveMember) -> bool:
    name = _basename(member)
    return name in BUILD_FILE_NAMES or name.lower().endswith(BUILD_FILE_SUFFIXES)


def _is_lock_file(member: ArchiveMember) -> bool:
    name = _basename(member)
    return name in LOCK_FILE_NAMES or name.lower().endswith(LOCK_FILE_SUFFIXES)


def _is_licence(member: ArchiveMember) -> bool:
    """LICENSE, LICENCE.md, COPYING.LESSER, LICENSE-MIT, or a file in a
    LICENSES/ folder (the REUSE convention)."""
    parts = member.path.lower().split("/")
    stem = parts[-1].split(".", 1)[0].split("-", 1)[0]
    return stem in LICENCE_STEMS or any(part in ("licenses", "licences") for part in parts[:-1])
