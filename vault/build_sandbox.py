"""Run a deposit's build in a real sandbox (bubblewrap), with hard limits.

The build runs from a private scratch copy of the source (``unpack_source``),
never from the intake file itself, under ``bwrap`` started by ``prlimit``::

    prlimit <limits> -- bwrap <namespaces, mounts> -- setpriv <drop to uid U> -- /bin/sh -c CMD

What the sandbox gives (see docs/verification.md, "The sandbox"):

- **No network.** Its own network namespace (``--unshare-net``): only a
  loopback interface with nothing listening, no DNS configuration. The host's
  services (PostgreSQL on 127.0.0.1, Redis) are in another namespace and
  unreachable.
- **A read-only host system.** The root is an empty tmpfs; ``/usr`` is bound
  read-only with the merged-/usr symlinks (``/bin``, ``/lib``...), and from
  ``/etc`` only what toolchains need (``ld.so.cache``, ``ld.so.conf*``,
  ``alternatives``, ``localtime``, ``ssl``, ``java-*``) plus a generated
  ``passwd``. Not visible: ``/root``, ``/home``, ``/var``, ``/opt``, the
  project's folders and the intake folder. Writable: ``/scratch`` (the bound
  scratch copy of the source, the working directory) and a private ``/tmp``
  tmpfs of limited size. ``--proc /proc`` and ``--dev /dev`` are the sandbox's
  own (a minimal /dev: null, zero, random, urandom, tty).
- **An unprivileged user.** Each build gets a uid of its own (from
  ESCROW_VERIFY_UID_BASE, default 61000, a range of ESCROW_VERIFY_UID_COUNT),
  reserved by an abstract unix socket while the build runs. bwrap starts as
  root only to build the namespaces and mounts; ``setpriv`` then switches to
  that uid, clears supplementary groups, empties the capability bounding,
  inheritable and ambient sets and sets no-new-privileges before the build
  command is executed. On the host the build's processes belong to that uid
  alone, so the process limit counts only the build's own processes and the
  final sweep can find every survivor by uid.
- **Its own PID, IPC and UTS namespaces** (``--unshare-pid``, with bwrap's
  reaper as PID 1), ``--new-session`` (no terminal to inject input into),
  ``--die-with-parent`` (the sandbox dies with the worker).
- **Limits** (``SandboxLimits``): CPU seconds per process (RLIMIT_CPU),
  address space per process (RLIMIT_AS), processes (RLIMIT_NPROC for the
  build's uid), the size of any one file (RLIMIT_FSIZE = scratch size), the
  captured output (read here; at the cap the log is cut and the build killed),
  the scratch folder's total size (measured every few seconds; over it, the
  build is killed), ``/tmp`` (tmpfs ``--size``), and a wall-clock deadline.
  Whenever the build ends, early or not, the namespace's PID 1 is killed
  (which kills every process in it) and then any process left with the
  build's uid; the result is only returned once none is left.
- **A clean environment.** ``--clearenv`` then PATH, HOME=/tmp, TMPDIR=/tmp,
  LANG=C.UTF-8; stdin is /dev/null; no descriptor is inherited (stdout and
  stderr go to one pipe read here).

Artefacts are looked for only once every build process is dead, by walking the
scratch tree without following symlinks; ``remove_tree`` then removes it, however
deep the build made it (``shutil.rmtree`` recurses and fails past ~1000 levels).

It needs root (to switch to the build uid); ``sandbox_available`` says why it
cannot run otherwise. Memory is limited per process through RLIMIT_AS and, when
the worker may make one (cgroup v1 memory hierarchy, or v2 with the memory
controller delegated), for the whole build by a memory cgroup of its own
(``MemoryCgroup``), which the build joins before its first process starts.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings

from vault.build_recipe import Recipe, parse_version_spec

__all__ = [
    "Artefact",
    "BuildResult",
    "MemoryCgroup",
    "SandboxError",
    "SandboxLimits",
    "ToolchainReport",
    "UnpackError",
    "check_toolchain",
    "memory_cgroup_available",
    "processes_of",
    "remove_tree",
    "run_build",
    "sandbox_available",
    "sandbox_uids",
    "tool_version",
    "unpack_source",
    "version_matches",
]

MiB = 1024 * 1024
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SCRATCH = "/scratch"
LOG_TAIL_LINES = 60
MAX_ARTEFACT_FILES = 1000
MAX_TREE_ENTRIES = 500_000
# Artefacts and the scratch size are looked for this deep at most.
MAX_WALK_DEPTH = 256
# After the deadline or a limit, how long the kill and sweep may take.
KILL_GRACE_SECONDS = 5.0
SCRATCH_CHECK_SECONDS = 2.0
TOOL_VERSION_TIMEOUT = 10
_READ_CHUNK = 64 * 1024
_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)*)")
# /etc entries toolchains read; everything else of /etc stays hidden.
_ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    # Public CA certificates: tools then fail on the network, not on a missing bundle.
    "ssl",
)
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What shells, make, compilers, Python and Node print when fork/clone hits RLIMIT_NPROC.
_PROCESS_ERRORS = re.compile(
    rb"Cannot fork|fork: retry|fork: Resource temporarily unavailable|"
    rb"BlockingIOError: \[Errno 11\]|spawn EAGAIN|"
    rb"(?:pthread_create|clone|posix_spawn)[^\n]*Resource temporarily unavailable"
)
_MEMORY_ERRORS = re.compile(
    rb"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory|"
    rb"JavaScript heap out of memory|virtual memory exhausted|Could not reserve enough space|"
    rb"Could not allocate compressed class space"
)


class SandboxError(RuntimeError):
    """The sandbox cannot run here (missing bwrap, not root, no free build uid)."""


class UnpackError(ValueError):
    """The source archive cannot be unpacked safely; the message names the member."""


@dataclass(frozen=True)
class SandboxLimits:
    """The limits of one build. Memory is per process (RLIMIT_AS)."""

    wall_seconds: int
    cpu_seconds: int
    memory_bytes: int
    processes: int
    output_bytes: int
    scratch_bytes: int

    @classmethod
    def from_settings(cls, recipe: Recipe) -> SandboxLimits:
        wall = recipe.time_limit_seconds
        return cls(
            wall_seconds=wall,
            # RLIMIT_CPU is per process: one process cannot use more than the wall time.
            cpu_seconds=wall,
            memory_bytes=int(getattr(settings, "ESCROW_VERIFY_MEMORY_MB", 2048)) * MiB,
            processes=int(getattr(settings, "ESCROW_VERIFY_PROCESSES", 256)),
            output_bytes=int(getattr(settings, "ESCROW_VERIFY_OUTPUT_MB", 16)) * MiB,
            scratch_bytes=int(getattr(settings, "ESCROW_VERIFY_SCRATCH_MB", 4096)) * MiB,
        )


@dataclass(frozen=True)
class ToolchainReport:
    found: dict[str, str | None]
    ok: bool
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"found": dict(self.found), "ok": self.ok, "problems": list(self.problems)}


@dataclass(frozen=True)
class Artefact:
    path: str
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class BuildResult:
    outcome: str
    exit_code: int | None
    duration_seconds: float
    log: bytes
    log_tail: str
    artefacts: tuple[Artefact, ...]
    missing_artefacts: tuple[str, ...]
    limit_hit: str | None
    toolchain: ToolchainReport

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


# --- the source ------------------------------------------------------------------------


def unpack_source(archive: Path, dest: Path) -> Path:
    """Unpack the intake copy (tar, tar.gz/bz2/xz or zip) into ``dest``.

    The archive was inspected before it was sealed; this checks again anyway:
    regular files, folders, and symlinks and hard links that stay inside the
    tree (a hard link becomes a copy). Refused: absolute names, ``..``,
    devices and FIFOs, a symlink with an absolute target or one resolving
    outside ``dest``, and any member written through a symlink. Returns the
    source root: ``dest``, or its only entry when the archive holds one
    top-level folder ("name-1.0/").
    """
    dest.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or any(dest.iterdir()):
        raise UnpackError(f"{dest}: the destination must be an empty folder")
    dest = dest.resolve()
    if zipfile.is_zipfile(archive):
        _unpack_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _unpack_tar(archive, dest)
    else:
        raise UnpackError(f"{archive.name}: neither a tar nor a zip archive")
    _check_links(dest)
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def _member_path(dest: Path, name: str) -> Path:
    """Where member ``name`` goes; refuses absolute names, ``..`` and paths
    that pass through a symlink already unpacked."""
    clean = name.replace("\\", "/")
    pure = PurePosixPath(clean)
    if "\x00" in clean:
        raise UnpackError(f"{name!r}: member name contains NUL")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise UnpackError(f"{name}: absolute member name")
    if ".." in pure.parts:
        raise UnpackError(f"{name}: member name contains '..'")
    parts = [part for part in pure.parts if part not in ("", ".")]
    if not parts:
        return dest
    for depth in range(1, len(parts) + 1):
        if dest.joinpath(*parts[:depth]).is_symlink():
            raise UnpackError(f"{name}: written through the symlink {'/'.join(parts[:depth])}")
    return dest.joinpath(*parts)


def _symlink(dest: Path, target: Path, link: str, name: str) -> None:
    if link.startswith("/") or "\x00" in link or not link:
        raise UnpackError(f"{name}: symlink to {link!r} (absolute or empty target)")
    resolved = os.path.normpath(os.path.join(os.path.dirname(target), link))
    if resolved != str(dest) and not resolved.startswith(str(dest) + os.sep):
        raise UnpackError(f"{name}: symlink to {link!r} leads outside the archive")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(link, target)


def _check_links(dest: Path) -> None:
    """Every symlink, followed to the end (through other symlinks), stays inside."""
    for folder, _dirs, others in _walk(dest):
        for name in others:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                continue
            real = os.path.realpath(path)
            if real != str(dest) and not real.startswith(str(dest) + os.sep):
                relative = os.path.relpath(path, dest)
                raise UnpackError(f"{relative}: symlink resolves outside the archive")


def _unpack_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar:
            target = _member_path(dest, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                source = tar.extractfile(member)
                if source is None:
                    raise UnpackError(f"{member.name}: cannot be read")
                _write_member(target, source, executable=bool(member.mode & 0o111))
            elif member.issym():
                _symlink(dest, target, member.linkname, member.name)
            elif member.islnk():
                try:
                    original = _member_path(dest, member.linkname)
                except UnpackError:
                    raise UnpackError(
                        f"{member.name}: hard link to {member.linkname!r} outside the archive"
                    ) from None
                if not original.is_file() or original.is_symlink():
                    raise UnpackError(f"{member.name}: hard link to a missing or special member")
                with original.open("rb") as source:
                    executable = bool(original.stat().st_mode & 0o111)
                    _write_member(target, source, executable=executable)
            else:
                raise UnpackError(f"{member.name}: a device, FIFO or other special member")


def _unpack_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            target = _member_path(dest, info.filename)
            kind = stat.S_IFMT(mode)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif kind == stat.S_IFLNK:
                link = zf.read(info)[:4096].decode("utf-8", errors="replace")
                _symlink(dest, target, link, info.filename)
            elif kind in (0, stat.S_IFREG):
                # Zip writers often store bare permission bits: no type means a file.
                with zf.open(info) as source:
                    _write_member(target, source, executable=bool(mode & 0o111))
            else:
                raise UnpackError(f"{info.filename}: a device, FIFO or other special member")


def _write_member(target: Path, source: Any, *, executable: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(target, flags, 0o755 if executable else 0o644)
    except FileExistsError:
        raise UnpackError(f"{target.name}: member appears twice") from None
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, _READ_CHUNK)


# --- the toolchain ---------------------------------------------------------------------


def check_toolchain(recipe: Recipe) -> ToolchainReport:
    """Run ``<tool> --version`` for each tool the recipe names and compare.

    Runs on the host: the sandbox sees the same /usr, so the same programs. A
    program that resolves outside /usr (a link into /opt, say) is there on the
    host but not in the sandbox, and is reported as a problem.
    """
    found: dict[str, str | None] = {}
    problems: list[str] = []
    for tool, spec in recipe.toolchain.items():
        program = shutil.which(tool, path=SANDBOX_PATH)
        if program is None:
            found[tool] = None
            problems.append(f"{tool}: not installed on the build host")
            continue
        version = tool_version(tool)
        found[tool] = version
        real = os.path.realpath(program)
        if not real.startswith("/usr/"):
            problems.append(f"{tool}: {program} is {real}, outside /usr: not in the sandbox")
            continue
        if version is None:
            if spec.strip() != "*":
                problems.append(f"{tool}: no version found in '{tool} --version'")
            continue
        if not version_matches(version, spec):
            problems.append(f"{tool}: found {version}, the recipe needs {spec}")
    return ToolchainReport(found=found, ok=not problems, problems=problems)


def tool_version(tool: str) -> str | None:
    """The first dotted version number ``<tool> --version`` prints, or None."""
    program = shutil.which(tool, path=SANDBOX_PATH)
    if program is None:
        return None
    try:
        completed = subprocess.run(
            [program, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"},
            timeout=TOOL_VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = completed.stdout[:4096].decode("utf-8", errors="replace")
    for line in text.splitlines():
        match = _VERSION.search(line)
        if match is not None:
            return match.group(1)
    return None


def version_matches(version: str, spec: str) -> bool:
    """Compare a found version with a recipe spec ("*", ">=12", "==3.11", "~=20").

    ``==`` compares the parts the spec names ("==3.11" accepts 3.11.4);
    ``~=X`` accepts any X.*, ``~=X.Y`` any version >= X.Y below X+1.
    """
    parsed = parse_version_spec(spec)
    if parsed is None:
        return True
    operator, wanted = parsed
    have = tuple(int(part) for part in version.split("."))
    width = max(len(have), len(wanted))
    padded_have = have + (0,) * (width - len(have))
    padded_wanted = wanted + (0,) * (width - len(wanted))
    if operator == "==":
        return have[: len(wanted)] + (0,) * (len(wanted) - len(have)) == wanted
    if operator == "~=":
        prefix = wanted[:-1] if len(wanted) > 1 else wanted
        return padded_have >= padded_wanted and have[: len(prefix)] == prefix
    comparisons = {
        ">=": padded_have >= padded_wanted,
        "<=": padded_have <= padded_wanted,
        ">": padded_have > padded_wanted,
        "<": padded_have < padded_wanted,
    }
    return comparisons[operator]


# --- the sandbox -----------------------------------------------------------------------


def sandbox_available() -> str | None:
    """None when a sandboxed build can run here, else the reason it cannot."""
    for program in ("bwrap", "prlimit", "setpriv"):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian packages bubblewrap, util-linux)"
    if os.geteuid() != 0:
        return "the build sandbox needs root to switch each build to a uid of its own"
    # The probe runs as nobody, so it never counts against a running build's uid.
    argv = [*_bwrap_argv(uid=65534, scratch=None, limits=None, passwd_fd=None), "/bin/true"]
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
            env={"PATH": SANDBOX_PATH},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not start: {exc}"
    if completed.returncode != 0:
        message = completed.stderr.decode("utf-8", errors="replace").strip()
        return f"bwrap does not start: {message or completed.returncode}"
    return None


def sandbox_uids() -> range:
    """The host uids builds run as, one per build at a time."""
    base = int(getattr(settings, "ESCROW_VERIFY_UID_BASE", 61000))
    count = int(getattr(settings, "ESCROW_VERIFY_UID_COUNT", 64))
    return range(base, base + count)


@contextlib.contextmanager
def _build_uid() -> Iterator[int]:
    """Reserve a free build uid for the duration of one build.

    The reservation is an abstract unix socket named after the uid: the kernel
    frees it when this process ends, even by a crash, so no lock file lingers.
    A uid that still owns a process (a survivor of a crashed worker) is skipped.
    """
    busy = _uids_with_processes()
    for uid in sandbox_uids():
        if uid in busy:
            continue
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lock.bind(f"\0escrow-build-uid-{uid}")
        except OSError:
            lock.close()
            continue
        try:
            yield uid
        finally:
            lock.close()
        return
    raise SandboxError("no free build uid: every uid of ESCROW_VERIFY_UID_BASE's range is busy")


def _uids_with_processes() -> set[int]:
    uids: set[int] = set()
    for pid in _pids():
        with contextlib.suppress(OSError):
            uids.add(os.stat(f"/proc/{pid}").st_uid)
    return uids


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def processes_of(uid: int) -> list[int]:
    """The host pids whose real uid is ``uid`` (read from /proc/<pid>/status)."""
    pids = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(pid)
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _bwrap_argv(
    *, uid: int, scratch: Path | None, limits: SandboxLimits | None, passwd_fd: int | None
) -> list[str]:
    argv: list[str] = []
    if limits is not None:
        argv += [
            "prlimit",
            # SIGXCPU at the soft limit; SIGKILL at the hard one for a process ignoring it.
            f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 2}",
            f"--as={limits.memory_bytes}",
            f"--nproc={limits.processes}",
            f"--fsize={limits.scratch_bytes}",
            "--nofile=1024",
            "--core=0",
            "--",
        ]
    argv += [
        "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "escrow-build",
        "--die-with-parent",
        "--new-session",
        # bwrap keeps only these for setpriv, which drops them (and all others) for good.
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
        "--cap-add",
        "CAP_SETPCAP",
        "--ro-bind",
        "/usr",
        "/usr",
        "--perms",
        "0755",
        "--dir",
        "/etc",
    ]
    for name in _ROOT_LINKS:
        link = Path("/") / name
        if link.is_symlink():
            argv += ["--symlink", os.readlink(link), str(link)]
    for name in _ETC_ENTRIES:
        if os.path.exists(f"/etc/{name}"):
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for java in sorted(Path("/etc").glob("java-*")):
        argv += ["--ro-bind", str(java), str(java)]
    if passwd_fd is not None:
        argv += ["--perms", "0644", "--ro-bind-data", str(passwd_fd), "/etc/passwd"]
    tmp_size = limits.scratch_bytes if limits is not None else 16 * MiB
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp"]
    if scratch is not None:
        argv += ["--bind", str(scratch), SCRATCH, "--chdir", SCRATCH]
    argv += [
        "--remount-ro",
        "/",
        "--clearenv",
        "--setenv",
        "PATH",
        SANDBOX_PATH,
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "USER",
        "build",
        "--",
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]
    return argv


class MemoryCgroup:
    """A memory cgroup of one build, so the build's processes together stay under
    the memory limit (RLIMIT_AS only bounds each process).

    Made under the worker's own memory cgroup, with cgroup v1 (``memory``
    hierarchy) or v2 (when the worker's cgroup delegates the memory controller
    to its children). ``create`` returns None when the host allows neither; the
    per-process limit then stands alone.
    """

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> MemoryCgroup | None:
        for version, parent in _memory_cgroup_parents():
            path = parent / name
            with contextlib.suppress(OSError):
                path.rmdir()  # left by a worker that died
            try:
                path.mkdir()
            except OSError:
                continue
            group = cls(path, version)
            try:
                group._limit(limit_bytes)
            except OSError:
                group.remove()
                continue
            return group
        return None

    def _limit(self, limit_bytes: int) -> None:
        if self.version == 1:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            swap = self.path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit_bytes))
        else:
            (self.path / "memory.max").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):
                (self.path / "memory.swap.max").write_text("0")

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        """How many of the build's processes the kernel killed for memory."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self) -> None:
        """Remove the (by now empty) cgroup; a kernel still reaping gets a moment."""
        for _ in range(40):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


def memory_cgroup_available() -> str | None:
    """None when builds get a memory cgroup of their own here, else the reason."""
    group = MemoryCgroup.create(f"escrow-build-probe-{os.getpid()}", 64 * MiB)
    if group is None:
        return "no writable memory cgroup (v1 hierarchy or delegated v2) for the worker"
    group.remove()
    return None


def _memory_cgroup_parents() -> list[tuple[int, Path]]:
    """The worker's own memory cgroup folders, v1 first, from /proc/self."""
    try:
        membership = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    own: dict[str, str] = {}
    for line in membership:
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    parents: list[tuple[int, Path]] = []
    for line in mounts:
        fields = line.split()
        if " - " not in line:
            continue
        root, mount_point = fields[3], fields[4]
        fs_type, _source, options = line.split(" - ", 1)[1].split()[:3]
        if fs_type == "cgroup" and "memory" in options.split(",") and "memory" in own:
            relative = os.path.relpath(own["memory"], root)
            parents.append((1, Path(mount_point) / relative))
        elif fs_type == "cgroup2" and "" in own:
            folder = Path(mount_point) / os.path.relpath(own[""], root)
            with contextlib.suppress(OSError):
                if "memory" in (folder / "cgroup.subtree_control").read_text().split():
                    parents.append((2, folder))
    return sorted(parents, key=lambda item: item[0])


def run_build(source_root: Path, recipe: Recipe, limits: SandboxLimits) -> BuildResult:
    """Build ``source_root`` (a scratch copy, changed in place) in the sandbox."""
    started = time.monotonic()
    toolchain = check_toolchain(recipe)
    if not toolchain.ok:
        note = "toolchain does not match the recipe; the build was not run:\n"
        log = (note + "".join(f"- {p}\n" for p in toolchain.problems)).encode()
        return _result("failed", None, started, log, (), (), None, toolchain)
    reason = sandbox_available()
    if reason is not None:
        raise SandboxError(reason)
    source_root = source_root.resolve(strict=True)
    with _build_uid() as uid:
        _chown_tree(source_root, uid)
        cgroup = MemoryCgroup.create(f"escrow-build-{uid}", limits.memory_bytes)
        try:
            run = _Run(
                source_root=source_root, recipe=recipe, limits=limits, uid=uid, cgroup=cgroup
            )
            run.execute()
        finally:
            if cgroup is not None:
                cgroup.remove()
        artefacts, missing, problems = _collect_artefacts(source_root, recipe.artefacts)
    log = run.log + "".join(f"[escrow] {line}\n" for line in [*run.notes, *problems]).encode()
    if run.limit_hit == "time":
        outcome = "timed_out"
    elif run.exit_code == 0 and not missing and run.limit_hit is None:
        outcome = "passed"
    else:
        outcome = "failed"
    return _result(
        outcome, run.exit_code, started, log, artefacts, missing, run.limit_hit, toolchain
    )


def _result(
    outcome: str,
    exit_code: int | None,
    started: float,
    log: bytes,
    artefacts: tuple[Artefact, ...],
    missing: tuple[str, ...],
    limit_hit: str | None,
    toolchain: ToolchainReport,
) -> BuildResult:
    tail = log.decode("utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return BuildResult(
        outcome=outcome,
        exit_code=exit_code,
        duration_seconds=round(time.monotonic() - started, 3),
        log=log,
        log_tail="\n".join(tail),
        artefacts=artefacts,
        missing_artefacts=missing,
        limit_hit=limit_hit,
        toolchain=toolchain,
    )


def _chown_tree(root: Path, uid: int) -> None:
    """Give the scratch tree to the build uid. A hard-linked file could be a host
    file's other name (chown would give that file away), so none is accepted."""
    for folder, _dirs, others in _walk(root, max_depth=None):
        os.lchown(folder, uid, uid)
        for name in others:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                raise SandboxError(f"{path}: a hard-linked file in the scratch; refused")
            os.lchown(path, uid, uid)


class _Run:
    """One sandboxed process tree: start, read the output, enforce limits, kill, sweep."""

    def __init__(
        self,
        *,
        source_root: Path,
        recipe: Recipe,
        limits: SandboxLimits,
        uid: int,
        cgroup: MemoryCgroup | None = None,
    ):
        self.cgroup = cgroup
        self.source_root = source_root
        self.recipe = recipe
        self.limits = limits
        self.uid = uid
        self.log = b""
        self.cut = False
        self.notes: list[str] = []
        self.limit_hit: str | None = None
        self.exit_code: int | None = None
        self.ns_init: int | None = None

    def execute(self) -> None:
        passwd = (
            f"root:x:0:0::/root:/usr/sbin/nologin\nbuild:x:{self.uid}:{self.uid}::/tmp:/bin/sh\n"
            "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
        ).encode()
        passwd_r, passwd_w = os.pipe()
        info_r, info_w = os.pipe()
        os.write(passwd_w, passwd)
        os.close(passwd_w)
        argv = _bwrap_argv(
            uid=self.uid, scratch=self.source_root, limits=self.limits, passwd_fd=passwd_r
        )
        argv[argv.index("bwrap") + 1 : argv.index("bwrap") + 1] = ["--info-fd", str(info_w)]
        argv += ["/bin/sh", "-c", self.recipe.command]
        if self.cgroup is not None:
            # The wrapper moves itself into the cgroup before anything else runs,
            # so every later process is born inside it.
            join = 'echo $$ > "$0" || exit 125; exec "$@"'
            argv = ["/bin/sh", "-c", join, str(self.cgroup.procs), *argv]
        deadline = time.monotonic() + self.limits.wall_seconds
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(passwd_r, info_w),
                start_new_session=True,
                env={"PATH": SANDBOX_PATH},
            )
        finally:
            os.close(passwd_r)
            os.close(info_w)
        try:
            self._watch(process, info_r, deadline)
        finally:
            os.close(info_r)
            self._kill(process)
        self._classify(process.returncode)

    def _watch(self, process: subprocess.Popen[bytes], info_r: int, deadline: float) -> None:
        assert process.stdout is not None
        chunks: list[bytes] = []
        size = 0
        next_scratch_check = time.monotonic() + SCRATCH_CHECK_SECONDS
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            selector.register(info_r, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    self.limit_hit = "time"
                    self.notes.append(
                        f"timed out after {self.limits.wall_seconds} s; the process tree was killed"
                    )
                    break
                if now >= next_scratch_check:
                    next_scratch_check = now + SCRATCH_CHECK_SECONDS
                    if _tree_size(self.source_root, self.limits.scratch_bytes) > (
                        self.limits.scratch_bytes
                    ):
                        self.limit_hit = "disk"
                        self.notes.append(
                            f"the scratch folder grew past {self.limits.scratch_bytes} bytes; "
                            "the build was killed"
                        )
                        break
                timeout = min(deadline, next_scratch_check) - now
                events = selector.select(timeout=max(timeout, 0.01))
                eof = False
                for key, _ in events:
                    if key.fileobj == info_r:
                        self._read_info(info_r)
                        selector.unregister(info_r)
                        continue
                    data = os.read(process.stdout.fileno(), _READ_CHUNK)
                    if not data:
                        eof = True
                        break
                    room = self.limits.output_bytes - size
                    chunks.append(data[:room])
                    size += min(len(data), room)
                    if len(data) > room:
                        self.cut = True
                        self.limit_hit = "output"
                        break
                if eof or self.cut:
                    break
        self.log = b"".join(chunks)
        if self.cut:
            self.log += (
                f"\n[escrow] output cut at {self.limits.output_bytes} bytes; the build was killed\n"
            ).encode()
        if self.limit_hit is None:
            # The output closed: the build is ending; give it until the deadline to exit.
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                self.limit_hit = "time"
                self.notes.append(
                    f"timed out after {self.limits.wall_seconds} s; the process tree was killed"
                )

    def _read_info(self, info_r: int) -> None:
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(info_r, 4096)
        with contextlib.suppress(ValueError, TypeError):
            self.ns_init = int(json.loads(data.decode())["child-pid"])

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        """Kill everything: the namespace's PID 1 (the kernel then kills every
        process in the namespace), bwrap's process group, then any process left
        with the build's uid, until none is left."""
        killed_early = process.poll() is None
        if self.ns_init is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.ns_init, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        give_up = time.monotonic() + KILL_GRACE_SECONDS
        while True:
            survivors = processes_of(self.uid)
            for pid in survivors:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not survivors:
                break
            if time.monotonic() > give_up:
                raise SandboxError(f"build processes of uid {self.uid} survive: {survivors}")
            time.sleep(0.05)
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if killed_early and self.limit_hit is None:
            self.limit_hit = "time"

    def _classify(self, returncode: int | None) -> None:
        if self.limit_hit is not None:
            return  # killed here: the exit code says nothing
        self.exit_code = returncode
        oom_kills = self.cgroup.oom_kills() if self.cgroup is not None else 0
        if oom_kills:
            self.notes.append(
                f"the kernel killed {oom_kills} process(es): the build's processes together "
                f"reached the memory limit of {self.limits.memory_bytes} bytes"
            )
        if returncode is None or returncode == 0:
            return
        if oom_kills:
            self.limit_hit = "memory"
            return
        signal_number = returncode - 128 if returncode > 128 else -returncode
        if signal_number == signal.SIGXCPU:
            self.limit_hit = "cpu"
            self.notes.append(f"a process used more than {self.limits.cpu_seconds} s of CPU")
        elif signal_number == signal.SIGXFSZ:
            self.limit_hit = "disk"
            self.notes.append(f"a file grew past {self.limits.scratch_bytes} bytes")
        elif _PROCESS_ERRORS.search(self.log):
            self.limit_hit = "processes"
            self.notes.append(f"the build reached the limit of {self.limits.processes} processes")
        elif _MEMORY_ERRORS.search(self.log):
            self.limit_hit = "memory"
            self.notes.append(
                f"a process reached the memory limit of {self.limits.memory_bytes} bytes"
            )


def _tree_size(root: Path, stop_above: int) -> int:
    """Bytes allocated under ``root`` (stops counting once above ``stop_above``)."""
    total = 0
    for folder, dirs, others in _walk(root):
        for name in [*dirs, *others]:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
        if total > stop_above:
            return total
    return total


def _collect_artefacts(
    root: Path, patterns: tuple[str, ...]
) -> tuple[tuple[Artefact, ...], tuple[str, ...], list[str]]:
    """Find each expected artefact inside ``root`` only and hash it.

    Runs after every build process is dead, so nothing changes under us. The
    tree is walked without following any symlink (a build could point a folder
    at ``/``); a matching symlink is read only when it resolves to a file inside
    the scratch tree, and is otherwise refused and reported.
    """
    entries = _tree_entries(root)
    artefacts: dict[str, Artefact] = {}
    missing: list[str] = []
    problems: list[str] = []
    for pattern in patterns:
        regex = _pattern_regex(pattern)
        matched = False
        for relative in entries:
            if not regex.fullmatch(relative):
                continue
            if len(artefacts) >= MAX_ARTEFACT_FILES:
                problems.append(f"more than {MAX_ARTEFACT_FILES} artefact files; the rest ignored")
                break
            real = Path(os.path.realpath(root / relative))
            if real != root and root not in real.parents:
                problems.append(f"artefact {relative} leads outside the scratch; refused")
                continue
            try:
                artefact = _hash_file(real, real.relative_to(root).as_posix())
            except OSError:
                continue
            if artefact is None:
                continue
            matched = True
            artefacts.setdefault(artefact.path, artefact)
        if not matched:
            missing.append(pattern)
    if missing:
        problems.append("missing artefacts: " + ", ".join(missing))
    return tuple(artefacts.values()), tuple(missing), problems


def _tree_entries(root: Path) -> list[str]:
    """Every file and symlink under ``root`` (relative, sorted), symlinks not followed."""
    entries: list[str] = []
    for folder, _dirs, others in _walk(root):
        base = Path(folder).relative_to(root)
        entries += [(base / name).as_posix() for name in others]
        if len(entries) > MAX_TREE_ENTRIES:
            break
    return sorted(entries)


def _walk(
    root: Path, *, max_depth: int | None = MAX_WALK_DEPTH
) -> Iterator[tuple[str, list[str], list[str]]]:
    """Like ``os.walk`` without following symlinks, but iterative: a build can make
    folders thousands deep, which ``os.walk`` (recursive in Python 3.11) dies on.
    Yields (folder, sub-folder names, every other name, symlinks included);
    folders it cannot read, or deeper than ``max_depth``, are skipped."""
    stack: list[tuple[str, int]] = [(str(root), 0)]
    while stack:
        folder, depth = stack.pop()
        dirs: list[str] = []
        others: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        dirs.append(entry.name)
                    else:
                        others.append(entry.name)
        except OSError:
            continue
        yield folder, dirs, others
        if max_depth is None or depth < max_depth:
            stack.extend((os.path.join(folder, name), depth + 1) for name in reversed(dirs))


def remove_tree(path: Path) -> None:
    """Remove a scratch tree, however deep or hostile, never following a symlink.

    ``shutil.rmtree`` recurses and fails on a tree thousands of folders deep (a
    build can make one), which would leave plaintext on disk. This works with
    two descriptors at most: each folder's sub-folders are first moved up to
    the top with fresh names, so no path ever gets long.
    """
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    top = os.open(path, flags)
    try:
        queue: list[str] = []
        with os.scandir(top) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    queue.append(entry.name)
                else:
                    os.unlink(entry.name, dir_fd=top)
        moved = 0
        while queue:
            name = queue.pop()
            folder = os.open(name, flags, dir_fd=top)
            try:
                with os.scandir(folder) as entries:
                    children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
                for child, is_dir in children:
                    if not is_dir:
                        os.unlink(child, dir_fd=folder)
                        continue
                    while True:
                        moved += 1
                        fresh = f".escrow-remove-{moved}"
                        try:
                            os.stat(fresh, dir_fd=top, follow_symlinks=False)
                        except FileNotFoundError:
                            break
                    os.rename(child, fresh, src_dir_fd=folder, dst_dir_fd=top)
                    queue.append(fresh)
            finally:
                os.close(folder)
            os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(path)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over relative POSIX paths: ``*`` and ``?`` stay within
    one path segment, ``**/`` spans any number of folders, ``[...]`` is a class."""
    out = []
    index = 0
    pattern = pattern.strip()
    if pattern.startswith("./"):
        pattern = pattern[2:]
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:[^/]+/)*")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index + 2 :]:
            end = pattern.index("]", index + 2)
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out))


def _hash_file(path: Path, relative: str) -> Artefact | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            return None
        raise
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        digest = hashlib.sha256()
        size = 0
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return Artefact(path=relative, sha256=digest.hexdigest(), size=size)
