"""The build sandbox, with the real bubblewrap: builds that pass, builds that need the
network, builds that try to escape or exhaust the host, and the host checked afterwards."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_or_fail
from tests.parallel import uid_range_base
from vault import build_sandbox
from vault.build_recipe import Recipe, parse_recipe
from vault.build_sandbox import (
    BuildResult,
    SandboxError,
    SandboxLimits,
    UnpackError,
    check_toolchain,
    memory_cgroup_available,
    processes_of,
    remove_tree,
    run_build,
    sandbox_available,
    sandbox_uids,
    unpack_source,
    version_matches,
)

MiB = 1024 * 1024

HELLO_C = b'#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
MAKEFILE = b"build/hello: hello.c\n\tmkdir -p build\n\tcc -O2 -o build/hello hello.c\n"
C_RECIPE = b"""
[build]
command = "make"
artefacts = ["build/hello"]
time_limit = 60

[toolchain]
gcc = ">=12"
make = "*"
"""


@pytest.fixture
def sandbox() -> None:
    reason = sandbox_available()
    if reason is not None:
        skip_or_fail(f"the build sandbox cannot run here: {reason}")


@pytest.fixture(autouse=True)
def _own_uid_range(settings: Any) -> None:
    """A uid range of these tests' own, so a build another test process runs at
    the same time is never mistaken for a survivor of ours: one per xdist worker too,
    as two workers may run tests of this module at once."""
    settings.ESCROW_VERIFY_UID_COUNT = 8
    settings.ESCROW_VERIFY_UID_BASE = uid_range_base(63000, settings.ESCROW_VERIFY_UID_COUNT)


@pytest.fixture
def no_survivors() -> Iterator[None]:
    """After the test, no process of any build uid is left on the host."""
    yield
    uids = sandbox_uids()
    # Asked of ps, not of the sandbox's own sweep (processes_of), which is under test.
    table = subprocess.run(
        ["ps", "-e", "-o", "uid=,pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    survivors = [line for line in table.splitlines() if int(line.split()[0]) in uids]
    assert survivors == []
    assert all(processes_of(uid) == [] for uid in uids)


def _limits(**overrides: int) -> SandboxLimits:
    values = {
        "wall_seconds": 20,
        "cpu_seconds": 20,
        "memory_bytes": 1024 * MiB,
        "processes": 64,
        "output_bytes": 1 * MiB,
        "scratch_bytes": 64 * MiB,
    } | overrides
    return SandboxLimits(**values)


def _recipe(command: str, artefacts: tuple[str, ...] = ("out",), time_limit: int = 20) -> Recipe:
    return Recipe(command=command, artefacts=artefacts, time_limit_seconds=time_limit)


def _build(tmp_path: Path, command: str, **kwargs: Any) -> BuildResult:
    source = tmp_path / "scratch" / "src"
    source.mkdir(parents=True, exist_ok=True)
    limits = kwargs.pop("limits", _limits())
    return run_build(source, _recipe(command, **kwargs), limits)


def _tar(path: Path, files: dict[str, bytes], *, top: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


# --- a build that works ----------------------------------------------------------------


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_c_project_builds_and_its_artefact_is_hashed(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "intake.tar.gz",
        {"hello.c": HELLO_C, "Makefile": MAKEFILE, "escrow.toml": C_RECIPE},
        top="hello-1.0/",
    )
    root = unpack_source(archive, tmp_path / "scratch")
    assert root == tmp_path / "scratch" / "hello-1.0"
    recipe = parse_recipe((root / "escrow.toml").read_text())

    result = run_build(root, recipe, SandboxLimits.from_settings(recipe))

    assert result.outcome == "passed", result.log_tail
    assert result.passed
    assert result.exit_code == 0
    assert result.limit_hit is None
    assert result.missing_artefacts == ()
    built = (root / "build" / "hello").read_bytes()
    [artefact] = result.artefacts
    assert artefact.path == "build/hello"
    assert artefact.sha256 == hashlib.sha256(built).hexdigest()
    assert artefact.size == len(built)
    assert artefact.as_dict() == {
        "path": "build/hello",
        "sha256": artefact.sha256,
        "size": len(built),
    }
    assert result.toolchain.ok
    assert result.toolchain.found["gcc"] is not None
    assert int(result.toolchain.found["gcc"].split(".")[0]) >= 12
    assert "cc -O2 -o build/hello hello.c" in result.log.decode()
    assert 0 < result.duration_seconds < 60


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_python_project_builds_a_wheel_offline(tmp_path: Path) -> None:
    """The Python example of docs/verification.md, with the host's pip and setuptools."""
    archive = _tar(
        tmp_path / "intake.tar.gz",
        {
            "setup.py": b"from setuptools import setup\nsetup(name='demo', version='1.0', "
            b"py_modules=['demo'])\n",
            "demo.py": b"VALUE = 1\n",
            "escrow.toml": b'[build]\ncommand = "python3 -m pip wheel --no-index '
            b'--no-build-isolation --no-deps --wheel-dir dist ."\nartefacts = ["dist/*.whl"]\n'
            b'[toolchain]\npython3 = "~=3.11"\n',
        },
    )
    root = unpack_source(archive, tmp_path / "scratch")
    recipe = parse_recipe((root / "escrow.toml").read_text())
    result = run_build(root, recipe, _limits(wall_seconds=60, cpu_seconds=60))
    assert result.outcome == "passed", result.log_tail
    [wheel] = result.artefacts
    assert wheel.path == "dist/demo-1.0-py3-none-any.whl"
    assert wheel.sha256 == hashlib.sha256((root / wheel.path).read_bytes()).hexdigest()


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_node_project_builds_offline(tmp_path: Path) -> None:
    """The Node example of docs/verification.md (no dependencies to install)."""
    lock = {
        "name": "demo",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {"": {"name": "demo", "version": "1.0.0"}},
    }
    package = {"name": "demo", "version": "1.0.0", "scripts": {"build": "node build.js"}}
    build_js = (
        b'const fs = require("fs"); fs.mkdirSync("dist", {recursive: true});'
        b' fs.writeFileSync("dist/index.js", "module.exports = 42;\\n");\n'
    )
    archive = _tar(
        tmp_path / "intake.tar.gz",
        {
            "package.json": json.dumps(package).encode(),
            "package-lock.json": json.dumps(lock).encode(),
            "build.js": build_js,
            "escrow.toml": b'[build]\ncommand = "npm ci --offline --cache .npm-cache && '
            b'npm run build"\nartefacts = ["dist/index.js"]\n'
            b'[toolchain]\nnode = ">=18"\nnpm = ">=9"\n',
        },
    )
    root = unpack_source(archive, tmp_path / "scratch")
    recipe = parse_recipe((root / "escrow.toml").read_text())
    result = run_build(root, recipe, _limits(wall_seconds=120, cpu_seconds=120))
    assert result.outcome == "passed", result.log_tail
    [index] = result.artefacts
    assert index.path == "dist/index.js"
    assert (root / "dist" / "index.js").read_bytes() == b"module.exports = 42;\n"
    assert index.sha256 == hashlib.sha256(b"module.exports = 42;\n").hexdigest()


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_python_dependency_download_fails_naming_the_network_error(tmp_path: Path) -> None:
    result = _build(
        tmp_path,
        "python3 -m pip download --no-cache-dir --retries 1 --timeout 5 -d out requests",
        limits=_limits(wall_seconds=60, cpu_seconds=60),
    )
    assert result.outcome == "failed"
    assert "No matching distribution found for requests" in result.log_tail
    assert "Failed to establish a new connection" in result.log.decode()
    assert "Temporary failure in name resolution" in result.log.decode()


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_globs_match_inside_the_scratch_and_each_file_is_hashed(tmp_path: Path) -> None:
    result = _build(
        tmp_path,
        "mkdir -p dist && printf a > dist/a.whl && printf bb > dist/b.whl",
        artefacts=("dist/*.whl",),
    )
    assert result.outcome == "passed", result.log_tail
    assert [(a.path, a.sha256, a.size) for a in result.artefacts] == [
        ("dist/a.whl", hashlib.sha256(b"a").hexdigest(), 1),
        ("dist/b.whl", hashlib.sha256(b"bb").hexdigest(), 2),
    ]


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_recursive_globs_never_follow_a_folder_symlink_out_of_the_scratch(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _build(
        tmp_path,
        "mkdir -p a/b && printf o > a/b/x.o && printf o > top.o && ln -s / host && ln -s /usr lib",
        artefacts=("**/*.o", "host/**/*.so*", "./top.o", "a/?/[xy].o"),
    )
    assert time.monotonic() - started < 10
    assert [a.path for a in result.artefacts] == ["a/b/x.o", "top.o"]
    assert result.missing_artefacts == ("host/**/*.so*",)
    assert result.outcome == "failed"


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_the_build_runs_unprivileged_with_a_clean_environment(tmp_path: Path) -> None:
    os.environ["ESCROW_LEAK_TEST"] = "secret"
    try:
        result = _build(
            tmp_path,
            "id -u > out; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; env; "
            "ls /proc | grep -cE '^[0-9]+$'; ls -l /proc/self/fd/",
        )
    finally:
        del os.environ["ESCROW_LEAK_TEST"]
    assert result.outcome == "passed", result.log_tail
    log = result.log.decode()
    uid = int((tmp_path / "scratch" / "src" / "out").read_text())
    assert uid in sandbox_uids()
    assert "CapEff:\t0000000000000000" in log
    assert "CapBnd:\t0000000000000000" in log
    assert "NoNewPrivs:\t1" in log
    assert "ESCROW_LEAK_TEST" not in log
    assert "HOME=/tmp" in log
    assert "LANG=C.UTF-8" in log
    # Only stdin (/dev/null), stdout and stderr (the log pipe) are open, plus ls's own.
    assert "0 -> /dev/null" in log
    assert " 3 -> " not in log.replace("3 -> /proc", "")


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_builds_at_the_same_time_run_as_different_uids(tmp_path: Path) -> None:
    roots = [tmp_path / f"scratch-{index}" for index in range(2)]
    for root in roots:
        root.mkdir()
    recipe = _recipe("id -u > out; sleep 1")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda root: run_build(root, recipe, _limits()), roots))
    assert [result.outcome for result in results] == ["passed", "passed"]
    uids = {int((root / "out").read_text()) for root in roots}
    assert len(uids) == 2
    assert uids <= set(sandbox_uids())


# --- the network -----------------------------------------------------------------------


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_build_that_needs_the_network_fails_naming_the_error(tmp_path: Path) -> None:
    result = _build(tmp_path, "curl -sS --max-time 5 https://example.com -o out")
    assert result.outcome == "failed"
    assert result.exit_code not in (0, None)
    assert "Could not resolve host: example.com" in result.log_tail
    assert result.missing_artefacts == ("out",)


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_no_name_resolution_and_no_host_service_on_loopback(tmp_path: Path) -> None:
    # On the host, PostgreSQL may well listen on 127.0.0.1:5432; inside, nothing does.
    connect = "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=5)"
    script = (
        "getent hosts example.com || echo 'getent: no answer';\n"
        f"python3 -c \"{connect}\" || echo 'tcp: refused';\n"
        "python3 -c \"import urllib.request as u; u.urlopen('http://93.184.215.14', timeout=5)\""
        " || echo 'http: no route';\n"
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1;\n"
        "touch out\n"
    )
    result = _build(tmp_path, script)
    log = result.log.decode()
    assert result.outcome == "passed", log
    assert "getent: no answer" in log
    assert "ConnectionRefusedError" in log
    assert "tcp: refused" in log
    assert "Network is unreachable" in log
    assert "http: no route" in log
    interfaces = [line.strip() for line in log.splitlines() if line.strip() in ("lo", "eth0")]
    assert interfaces == ["lo"]


# --- escapes ---------------------------------------------------------------------------


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_writes_outside_the_scratch_are_stopped_and_the_host_is_unharmed(
    tmp_path: Path, settings: Any
) -> None:
    intake = Path(settings.ESCROW_INTAKE_DIR)
    intake.mkdir(parents=True)
    marker = f"escrow-escape-{uuid.uuid4().hex}"
    targets = [
        f"/usr/{marker}",
        f"/etc/{marker}",
        f"/{marker}",
        f"{intake}/{marker}",
        f"{tmp_path}/{marker}",
        f"/tmp/{marker}",
        f"/root/{marker}",
    ]
    script = "".join(f"echo pwned > {t} && echo WROTE {t}\n" for t in targets) + "touch out\n"
    result = _build(tmp_path, script)
    log = result.log.decode()
    assert result.outcome == "passed", log
    assert "Read-only file system" in log
    assert f"cannot create /root/{marker}: Directory nonexistent" in log
    assert f"cannot create {intake}/{marker}: Directory nonexistent" in log
    # Only the private /tmp takes the write, and it vanished with the sandbox.
    assert [line for line in log.splitlines() if line.startswith("WROTE")] == [
        f"WROTE /tmp/{marker}"
    ]
    for target in targets:
        assert not os.path.lexists(target), target


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_root_home_and_the_intake_folder_are_not_visible(tmp_path: Path, settings: Any) -> None:
    intake = Path(settings.ESCROW_INTAKE_DIR)
    intake.mkdir(parents=True)
    (intake / "deposit-1.tar").write_bytes(b"the plaintext source")
    script = (
        f"ls /root; ls /home; ls /var; ls {intake}; cat {intake}/deposit-1.tar;"
        " cat /etc/shadow; cat /etc/hostname; touch out"
    )
    result = _build(tmp_path, script)
    log = result.log.decode()
    assert result.outcome == "passed", log
    assert "the plaintext source" not in log
    for folder in ("/root", "/home", "/var", str(intake)):
        assert f"ls: cannot access '{folder}': No such file or directory" in log
    for path in (f"{intake}/deposit-1.tar", "/etc/shadow", "/etc/hostname"):
        assert f"cat: {path}: No such file or directory" in log


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_symlink_artefact_leading_outside_is_refused(tmp_path: Path) -> None:
    result = _build(
        tmp_path,
        "ln -s /etc/passwd out; printf x > real; ln -s real inside",
        artefacts=("out", "inside"),
    )
    assert result.outcome == "failed"
    assert result.missing_artefacts == ("out",)
    assert [(a.path, a.size) for a in result.artefacts] == [("real", 1)]
    assert "artefact out leads outside the scratch" in result.log_tail


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_fork_bomb_is_limited_and_leaves_no_process(tmp_path: Path) -> None:
    bomb = "import os\nwhile True:\n    os.fork()\n"
    (tmp_path / "scratch" / "src").mkdir(parents=True)
    (tmp_path / "scratch" / "src" / "bomb.py").write_text(bomb)
    result = _build(tmp_path, "python3 bomb.py", limits=_limits(processes=32, wall_seconds=20))
    assert result.outcome == "failed", result.log_tail
    assert result.limit_hit == "processes"
    assert "Resource temporarily unavailable" in result.log_tail
    assert "the build reached the limit of 32 processes" in result.log_tail


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_shell_fork_bomb_is_stopped_by_the_deadline(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _build(
        tmp_path, "bomb() { bomb | bomb & }; bomb; sleep 60", limits=_limits(wall_seconds=3)
    )
    assert time.monotonic() - started < 3 + 6
    assert result.outcome == "timed_out"
    assert result.limit_hit == "time"
    assert "Cannot fork" in result.log.decode()


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_allocating_4_gib_hits_the_memory_limit(tmp_path: Path) -> None:
    result = _build(tmp_path, 'python3 -c "bytearray(4 * 1024**3)"')
    assert result.outcome == "failed"
    assert result.limit_hit == "memory"
    assert "MemoryError" in result.log_tail
    assert f"memory limit of {1024 * MiB} bytes" in result.log_tail


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_many_processes_together_hit_the_build_memory_cgroup(tmp_path: Path) -> None:
    """Each process stays under RLIMIT_AS (512 MiB); four together pass the build's
    512 MiB: the memory cgroup's OOM killer stops the build, not the host's."""
    reason = memory_cgroup_available()
    if reason is not None:
        pytest.skip(f"whole-build memory limit not available here: {reason}")
    hog = "python3 -c \"import time; b = b'x' * (300 * 2**20); time.sleep(8)\""
    command = f"for i in 1 2 3 4; do {hog} & done; wait; wait; exit 1"
    started = time.monotonic()
    result = _build(tmp_path, command, limits=_limits(memory_bytes=512 * MiB))
    assert time.monotonic() - started < 20
    assert result.outcome == "failed"
    assert result.limit_hit == "memory"
    assert "the build's processes together reached the memory limit" in result.log_tail
    assert not list(Path("/sys/fs/cgroup/memory").rglob("escrow-build-6300*"))


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_endless_output_is_cut_and_the_build_killed(tmp_path: Path) -> None:
    result = _build(tmp_path, "yes escrow", limits=_limits(output_bytes=100_000))
    assert result.outcome == "failed"
    assert result.limit_hit == "output"
    assert result.exit_code is None
    assert result.log.startswith(b"escrow\nescrow\n")
    assert len(result.log) < 100_000 + 500
    assert "output cut at 100000 bytes" in result.log_tail


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_sleeping_past_the_limit_times_out_and_kills_the_whole_tree(tmp_path: Path) -> None:
    # A detached grandchild (re-parented to the namespace's init) must die too.
    started = time.monotonic()
    result = _build(
        tmp_path,
        "(setsid sleep 1000 &) ; (sleep 999 &) ; echo started; sleep 100",
        limits=_limits(wall_seconds=2),
    )
    elapsed = time.monotonic() - started
    assert result.outcome == "timed_out"
    assert result.limit_hit == "time"
    assert result.exit_code is None
    assert 2 <= result.duration_seconds < 2 + 3
    assert elapsed < 2 + 5
    assert "started" in result.log_tail
    assert "timed out after 2 s; the process tree was killed" in result.log_tail


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_cpu_time_is_limited_per_process(tmp_path: Path) -> None:
    result = _build(
        tmp_path, 'python3 -c "while True: pass"', limits=_limits(cpu_seconds=1, wall_seconds=20)
    )
    assert result.outcome == "failed"
    assert result.limit_hit == "cpu"
    assert result.duration_seconds < 10


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_the_scratch_size_is_limited(tmp_path: Path) -> None:
    one_file = "head -c 60000000 /dev/zero > big"
    result = _build(tmp_path, one_file, limits=_limits(scratch_bytes=8 * MiB))
    assert result.outcome == "failed"
    assert result.limit_hit == "disk"
    many = "for i in 1 2 3 4 5 6; do head -c 4000000 /dev/zero > f$i; done; sleep 30"
    result = _build(tmp_path, many, limits=_limits(scratch_bytes=8 * MiB))
    assert result.outcome == "failed"
    assert result.limit_hit == "disk"
    assert result.duration_seconds < 10
    assert "the scratch folder grew past 8388608 bytes" in result.log_tail


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_missing_artefact_fails_naming_it(tmp_path: Path) -> None:
    result = _build(tmp_path, "touch present", artefacts=("present", "build/app", "dist/*.whl"))
    assert result.outcome == "failed"
    assert result.exit_code == 0
    assert result.missing_artefacts == ("build/app", "dist/*.whl")
    assert "missing artefacts: build/app, dist/*.whl" in result.log_tail
    assert [a.path for a in result.artefacts] == ["present"]


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_failing_command_fails_with_its_exit_code(tmp_path: Path) -> None:
    result = _build(tmp_path, "echo compiling; touch out; exit 7")
    assert result.outcome == "failed"
    assert result.exit_code == 7
    assert result.limit_hit is None
    assert result.log_tail.startswith("compiling")


@pytest.mark.usefixtures("sandbox", "no_survivors")
def test_a_tree_over_a_thousand_folders_deep_is_measured_and_removed(tmp_path: Path) -> None:
    """os.walk and shutil.rmtree recurse and die on such a tree; plaintext would stay."""
    result = _build(
        tmp_path, "(for i in $(seq 1200); do mkdir d && cd d || exit 1; done); touch out"
    )
    assert result.outcome == "passed", result.log_tail
    scratch = tmp_path / "scratch"
    host = tmp_path / "host"
    host.mkdir()
    (host / "keep").write_text("keep")
    os.symlink(host, scratch / "src" / "to-host")
    remove_tree(scratch)
    assert not scratch.exists()
    assert (host / "keep").read_text() == "keep"


def test_remove_tree_takes_files_links_and_missing_paths(tmp_path: Path) -> None:
    remove_tree(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    remove_tree(tmp_path / "file")
    assert not (tmp_path / "file").exists()
    (tmp_path / "dir" / ".escrow-remove-1" / "a").mkdir(parents=True)
    (tmp_path / "dir" / "b" / "c").mkdir(parents=True)
    (tmp_path / "dir" / "b" / "c" / "f").write_text("x")
    os.symlink("/usr", tmp_path / "dir" / "b" / "usr")
    remove_tree(tmp_path / "dir")
    assert not (tmp_path / "dir").exists()
    assert os.path.isdir("/usr/bin")


@pytest.mark.usefixtures("sandbox")
def test_a_hard_linked_file_in_the_scratch_is_refused_before_any_chown(tmp_path: Path) -> None:
    host_file = tmp_path / "host-secret"
    host_file.write_text("secret")
    source = tmp_path / "scratch" / "src"
    source.mkdir(parents=True)
    os.link(host_file, source / "alias")
    with pytest.raises(SandboxError, match="alias: a hard-linked file in the scratch; refused"):
        run_build(source, _recipe("touch out"), _limits())
    assert host_file.stat().st_uid == 0


# --- the toolchain ---------------------------------------------------------------------


def test_check_toolchain_finds_versions_and_names_mismatches() -> None:
    recipe = parse_recipe(
        '[build]\ncommand="make"\nartefacts=["a"]\n'
        '[toolchain]\ngcc=">=12"\nmake="*"\ncobol-compiler="*"\npython3=">=99"\n'
    )
    report = check_toolchain(recipe)
    assert not report.ok
    assert report.found["gcc"] is not None and report.found["make"] is not None
    assert report.found["cobol-compiler"] is None
    assert report.problems == [
        "cobol-compiler: not installed on the build host",
        f"python3: found {report.found['python3']}, the recipe needs >=99",
    ]
    assert report.as_dict()["ok"] is False


def test_a_tool_outside_usr_is_reported_as_invisible_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opt = tmp_path / "opt" / "bin"
    opt.mkdir(parents=True)
    (opt / "mytool").write_text("#!/bin/sh\necho 'mytool 4.2.1'\n")
    (opt / "mytool").chmod(0o755)
    monkeypatch.setattr(build_sandbox, "SANDBOX_PATH", f"{opt}:/usr/bin")
    recipe = parse_recipe('[build]\ncommand="x"\nartefacts=["a"]\n[toolchain]\nmytool=">=4"\n')
    report = check_toolchain(recipe)
    assert report.found == {"mytool": "4.2.1"}
    assert report.problems == [
        f"mytool: {opt}/mytool is {opt}/mytool, outside /usr: not in the sandbox"
    ]


def test_a_toolchain_mismatch_fails_without_running(tmp_path: Path) -> None:
    recipe = parse_recipe(
        '[build]\ncommand="touch ran out"\nartefacts=["out"]\n[toolchain]\ngcc="<3"\n'
    )
    (tmp_path / "src").mkdir()
    result = run_build(tmp_path / "src", recipe, _limits())
    assert result.outcome == "failed"
    assert result.exit_code is None
    assert "toolchain does not match the recipe" in result.log_tail
    assert "gcc: found" in result.log_tail
    assert not (tmp_path / "src" / "ran").exists()


@pytest.mark.parametrize(
    ("version", "spec", "matches"),
    [
        ("12.2.0", "*", True),
        ("12.2.0", ">=12", True),
        ("11.4.0", ">=12", False),
        ("3.11.2", "==3.11", True),
        ("3.12.0", "==3.11", False),
        ("3", "==3.0", True),
        ("20.11.1", "~=20", True),
        ("21.0.0", "~=20", False),
        ("3.11.4", "~=3.11", True),
        ("4.0", "~=3.11", False),
        ("3.10", "~=3.11", False),
        ("3.11.9", "~=3.11.2", True),
        ("3.12.0", "~=3.11.2", False),
        ("4.3", "<5", True),
        ("5.0", "<5", False),
        ("5.0.1", ">5", True),
        ("5", "<=5.0", True),
    ],
)
def test_version_matches(version: str, spec: str, matches: bool) -> None:
    assert version_matches(version, spec) is matches


# --- unpacking -------------------------------------------------------------------------


def test_unpack_keeps_a_flat_archive_root(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", {"escrow.toml": b"x", "src/main.c": b"int main;"})
    root = unpack_source(archive, tmp_path / "dest")
    assert root == tmp_path / "dest"
    assert (root / "src" / "main.c").read_bytes() == b"int main;"


def test_unpack_a_zip(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("app/escrow.toml", "x")
        zf.writestr("app/build.sh", "echo")
    root = unpack_source(tmp_path / "a.zip", tmp_path / "dest")
    assert root == tmp_path / "dest" / "app"
    assert (root / "build.sh").read_text() == "echo"


def _tar_entries(path: Path, entries: list[tuple[str, bytes, str]]) -> Path:
    """(name, tar type, link target) entries; regular files hold b"data"."""
    with tarfile.open(path, "w") as tar:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            data = b"data" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpack_keeps_links_that_stay_inside(tmp_path: Path) -> None:
    archive = _tar_entries(
        tmp_path / "ok.tar",
        [
            ("lib/libx.so.1", tarfile.REGTYPE, ""),
            ("lib/libx.so", tarfile.SYMTYPE, "libx.so.1"),
            ("lib/copy", tarfile.LNKTYPE, "lib/libx.so.1"),
            ("top", tarfile.SYMTYPE, "lib"),
        ],
    )
    root = unpack_source(archive, tmp_path / "dest")
    assert root == tmp_path / "dest"
    assert os.readlink(root / "lib" / "libx.so") == "libx.so.1"
    assert (root / "lib" / "libx.so").read_bytes() == b"data"
    # A hard link becomes a copy: the tree never shares an inode with anything.
    assert (root / "lib" / "copy").read_bytes() == b"data"
    assert (root / "lib" / "copy").stat().st_nlink == 1
    assert os.readlink(root / "top") == "lib"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [("link", tarfile.SYMTYPE, "/etc/passwd")],
            r"link: symlink to '/etc/passwd' \(absolute or empty target\)",
        ),
        (
            [("a/up", tarfile.SYMTYPE, "../../etc")],
            r"a/up: symlink to '\.\./\.\./etc' leads outside the archive",
        ),
        (
            [("d", tarfile.SYMTYPE, "."), ("e", tarfile.SYMTYPE, "d/..")],
            r"e: symlink resolves outside the archive",
        ),
        (
            [("d", tarfile.SYMTYPE, "sub"), ("d/file", tarfile.REGTYPE, "")],
            r"d/file: written through the symlink d",
        ),
        (
            [("hard", tarfile.LNKTYPE, "/etc/passwd")],
            r"hard: hard link to '/etc/passwd' outside the archive",
        ),
        ([("hard", tarfile.LNKTYPE, "nothing")], r"hard: hard link to a missing or special"),
        ([("dev", tarfile.CHRTYPE, "")], r"dev: a device, FIFO or other special member"),
        ([("fifo", tarfile.FIFOTYPE, "")], r"fifo: a device, FIFO or other special member"),
        ([("../escape", tarfile.REGTYPE, "")], r"\.\./escape: member name contains '\.\.'"),
        ([("/etc/cron.d/x", tarfile.REGTYPE, "")], r"/etc/cron\.d/x: absolute member name"),
        (
            [("twice", tarfile.REGTYPE, ""), ("twice", tarfile.REGTYPE, "")],
            r"twice: member appears twice",
        ),
    ],
)
def test_unpack_refuses_unsafe_tar_members(
    tmp_path: Path, entries: list[tuple[str, bytes, str]], message: str
) -> None:
    archive = _tar_entries(tmp_path / "bad.tar", entries)
    with pytest.raises(UnpackError, match=message):
        unpack_source(archive, tmp_path / "a" / "dest")
    assert not (tmp_path / "a" / "escape").exists()


def test_unpack_zip_symlinks(tmp_path: Path) -> None:
    def link(name: str, target: str) -> tuple[zipfile.ZipInfo, str]:
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        return info, target

    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as zf:
        zf.writestr("real", "x")
        zf.writestr(*link("alias", "real"))
    root = unpack_source(tmp_path / "ok.zip", tmp_path / "dest")
    assert os.readlink(root / "alias") == "real"
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr(*link("shadow", "/etc/shadow"))
    with pytest.raises(UnpackError, match=r"shadow: symlink to '/etc/shadow' \(absolute"):
        unpack_source(tmp_path / "bad.zip", tmp_path / "dest2")


def test_unpack_refuses_a_zip_escape_and_non_archives(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("../../evil", "x")
    with pytest.raises(UnpackError, match=r"member name contains '\.\.'"):
        unpack_source(tmp_path / "bad.zip", tmp_path / "dest")
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(UnpackError, match=r"plain\.txt: neither a tar nor a zip archive"):
        unpack_source(tmp_path / "plain.txt", tmp_path / "dest2")


def test_unpack_needs_an_empty_destination(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", {"f": b"x"})
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "old").write_text("x")
    with pytest.raises(UnpackError, match="must be an empty folder"):
        unpack_source(archive, tmp_path / "dest")


def test_limits_from_settings(settings: Any) -> None:
    settings.ESCROW_VERIFY_MEMORY_MB = 512
    settings.ESCROW_VERIFY_PROCESSES = 100
    settings.ESCROW_VERIFY_OUTPUT_MB = 2
    limits = SandboxLimits.from_settings(_recipe("make", time_limit=300))
    assert limits.wall_seconds == 300
    assert limits.cpu_seconds == 300
    assert limits.memory_bytes == 512 * MiB
    assert limits.processes == 100
    assert limits.output_bytes == 2 * MiB


def test_sandbox_available_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert sandbox_available() == (
        "bwrap is not installed (Debian packages bubblewrap, util-linux)"
    )
