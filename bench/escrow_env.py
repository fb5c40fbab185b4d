"""A throwaway escrow installation for the sealing and upload benchmarks.

The driver side (imported by ``bench.seal_throughput``, ``bench.seal_memory``
and ``bench.upload_memory``) never imports Django: everything that touches the
app runs in a child process with its own ``ESCROW_VAR_DIR``, so the numbers
are that process's own and the developer's ``var/`` is never touched. The
child side is this module run as a script:

    python -m bench.escrow_env setup   # product, notary recipient, deposit token (JSON out)
    python -m bench.escrow_env seal --archive A --version V --sha256 H --token T

``seal`` times one ``deposit_receive`` call from inside the process (Django
start-up excluded), with a per-step breakdown, and reports its own memory:
``VmRSS``/``VmHWM`` once Django is set up and warm, ``VmHWM`` at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.age_throughput import TIME, Run, timed
from bench.run import REPO

#: The one product every benchmark deposits to.
PRODUCT_SLUG = "bench-product"
_WRITE_BLOCK = 4 * 1024 * 1024
#: Each archive member is about this big, up to MAX_MEMBERS members.
_MEMBER_BYTES = 4 * 1024 * 1024
_MAX_MEMBERS = 400
#: Bytes a "text" member is made of: source-like ASCII, but still incompressible
#: because the choice of character comes from a cipher stream.
_TEXT_ALPHABET = b"abcdefghijklmnopqrstuvwxyz_ABCDEF0123456789    ().,:=\n\n\n"
_TEXT_TABLE = bytes(_TEXT_ALPHABET[i % len(_TEXT_ALPHABET)] for i in range(256))


@dataclass(frozen=True)
class EscrowEnv:
    """One throwaway installation: its environment, token and notary key."""

    var_dir: Path
    env: dict[str, str]
    token: str
    recipient: str
    identity: Path
    #: Folders of the storage sites, primary first.
    site_folders: tuple[Path, ...]

    @property
    def sites_label(self) -> str:
        """How the sites are configured, for the reader of a section."""
        if len(self.site_folders) == 1:
            return "one local site (`ESCROW_SITES=primary`, `ESCROW_SITE_PRIMARY_URL=file:///…`)"
        return "the embedded default: two local sites, primary and replica"

    def clear_sites(self) -> None:
        """Remove every stored object, so repeated deposits do not fill the disk."""
        for folder in self.site_folders:
            if folder.exists():
                shutil.rmtree(folder, onerror=_make_writable_and_retry)
            folder.mkdir(parents=True)


def _make_writable_and_retry(function: Callable[[str], Any], path: str, _exc_info: object) -> None:
    # Sites make stored objects read-only; their folders may be too.
    os.chmod(Path(path).parent, 0o755)
    function(path)


def create(workdir: Path, *, single_site: bool) -> EscrowEnv:
    """Migrate a fresh SQLite database under ``workdir`` and add what a deposit needs.

    ``single_site`` configures only a primary site, so sealing and storing are
    measured without copying to a replica (replication then only records the
    state); otherwise the embedded default of two local sites applies.
    """
    var_dir = workdir / "var"
    var_dir.mkdir(parents=True)
    env = child_environment(var_dir)
    if single_site:
        primary = workdir / "site-primary"
        env |= {"ESCROW_SITES": "primary", "ESCROW_SITE_PRIMARY_URL": f"file://{primary}"}
        folders: tuple[Path, ...] = (primary,)
    else:
        folders = (var_dir / "vault" / "primary", var_dir / "vault" / "replica")
    identity = workdir / "notary-key.txt"
    subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
    recipient = output_of(["age-keygen", "-y", identity])
    manage = [sys.executable, "manage.py"]
    _run_checked([*manage, "migrate", "--no-input", "--verbosity", "0"], env=env)
    setup = json.loads(
        _run_checked([sys.executable, "-m", "bench.escrow_env", "setup", recipient], env=env)
    )
    return EscrowEnv(
        var_dir=var_dir,
        env=env,
        token=setup["token"],
        recipient=recipient,
        identity=identity,
        site_folders=folders,
    )


def child_environment(var_dir: Path) -> dict[str, str]:
    """This process's environment without anything that would point the app elsewhere.

    A developer's DATABASE_URL, broker or site list must not leak into the
    throwaway installation: SQLite, in-process tasks and ``var_dir`` it is.
    """
    dropped = ("ESCROW_", "DATABASE_", "CELERY_", "DJANGO_", "AGE_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(dropped)}
    env |= {"ESCROW_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "false", "LOG_LEVEL": "WARNING"}
    return env


# --- Archives ---------------------------------------------------------------------


def write_tar(path: Path, size: int) -> str:
    """Write a plain tar of exactly ``size`` bytes; return its SHA-256.

    A few hundred members, one in four "text" (source-like ASCII) and the rest
    binary, all from a ChaCha20 key stream: incompressible, generated far faster
    than ``os.urandom`` and never held in memory (4 MiB blocks). The archive is
    headers, contents and the end marker, then zero padding up to ``size``,
    which tar readers (and the app's inspection) accept after the end marker.
    """
    members = max(1, min(_MAX_MEMBERS, size // _MEMBER_BYTES))
    overhead = members * tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE
    if size < overhead:
        raise ValueError(f"{size} bytes is too small for a tar of {members} members")
    sizes = _member_sizes(members, (size - overhead) // tarfile.BLOCKSIZE)
    stream = _KeyStream()
    digest = hashlib.sha256()
    written = 0
    with path.open("wb") as file:

        def emit(data: bytes) -> None:
            nonlocal written
            digest.update(data)
            file.write(data)
            written += len(data)

        for index, member_size in enumerate(sizes):
            text = index % 4 == 0
            info = tarfile.TarInfo(
                f"release/src/module_{index:03d}.py"
                if text
                else f"release/assets/blob_{index:03d}.bin"
            )
            info.size = member_size
            info.mtime = 1_700_000_000
            info.mode = 0o644
            emit(info.tobuf(format=tarfile.USTAR_FORMAT))
            remaining = member_size
            while remaining:
                block = stream.read(min(_WRITE_BLOCK, remaining))
                emit(block.translate(_TEXT_TABLE) if text else block)
                remaining -= len(block)
        # The end marker, then padding: zeros all the way to the requested size.
        while written < size:
            emit(bytes(min(_WRITE_BLOCK, size - written)))
    return digest.hexdigest()


def _member_sizes(members: int, blocks: int) -> list[int]:
    """Split ``blocks`` 512-byte blocks over the members, unevenly but reproducibly."""
    weights = [random.Random(index).uniform(0.25, 1.75) for index in range(members)]
    total = sum(weights)
    counts = [int(blocks * weight / total) for weight in weights]
    counts[-1] += blocks - sum(counts)
    return [count * tarfile.BLOCKSIZE for count in counts]


class _KeyStream:
    """Incompressible bytes from a ChaCha20 key stream (~4 GB/s, against ~0.3 GB/s
    for ``os.urandom`` here), so building a 4 GiB archive does not dominate the run."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        key, nonce = os.urandom(32), os.urandom(16)
        self._cipher = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
        self._zeros = bytes(_WRITE_BLOCK)

    def read(self, size: int) -> bytes:
        return self._cipher.update(self._zeros[:size])


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(_WRITE_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# --- Sealing in a child process ---------------------------------------------------


@dataclass(frozen=True)
class SealRun:
    """One ``deposit_receive`` in a child process, as that process measured it."""

    #: Wall time of the ``deposit_receive`` call alone.
    seconds: float
    #: Wall time of the whole child process (Python and Django start-up included).
    process_seconds: float
    #: Peak RSS of the child as GNU time reports it.
    time_peak_kib: int
    #: The child's VmRSS and VmHWM once Django was set up and warm, before sealing.
    baseline_rss_kib: int
    baseline_hwm_kib: int
    #: The child's VmHWM and ``ru_maxrss`` after sealing.
    peak_hwm_kib: int
    ru_maxrss_kib: int
    state: str
    #: Why the deposit was rejected or failed, if it was.
    problem: str = ""
    #: Seconds per pipeline step (see ``_STEPS``).
    steps: dict[str, float] = field(default_factory=dict)
    #: Site-relative key of the sealed object.
    sealed_key: str = ""


def seal(escrow: EscrowEnv, archive: Path, *, version: str, sha256: str, scratch: Path) -> SealRun:
    """Deposit ``archive`` as ``version`` through ``deposit_receive`` in a child process."""
    report = scratch / f"seal-{version}.json"
    argv = [
        sys.executable,
        "-m",
        "bench.escrow_env",
        "seal",
        "--archive",
        str(archive),
        "--version",
        version,
        "--sha256",
        sha256,
        "--token",
        escrow.token,
    ]
    process: Run = timed(argv, env=escrow.env, stdout=report)
    result = json.loads(report.read_text())
    report.unlink()
    if result["state"] not in ("stored", "replicated"):
        raise RuntimeError(f"deposit {version} ended {result['state']}: {result['problem']}")
    return SealRun(
        seconds=result["seconds"],
        process_seconds=process.seconds,
        time_peak_kib=process.peak_rss_kib,
        baseline_rss_kib=result["baseline_rss_kib"],
        baseline_hwm_kib=result["baseline_hwm_kib"],
        peak_hwm_kib=result["peak_hwm_kib"],
        ru_maxrss_kib=result["ru_maxrss_kib"],
        state=result["state"],
        problem=result["problem"],
        steps=result["steps"],
        sealed_key=result["sealed_key"],
    )


def check_sealed(escrow: EscrowEnv, run: SealRun, expected_sha256: str, scratch: Path) -> None:
    """Open the stored sealed object with the real ``age`` tool and the notary's key;
    it must give back the archive, or the run's time means nothing."""
    sealed = escrow.site_folders[0] / run.sealed_key
    opened = scratch / "opened.tar"
    subprocess.run(["age", "-d", "-i", escrow.identity, "-o", opened, sealed], check=True)
    try:
        if sha256_of(opened) != expected_sha256:
            raise RuntimeError(f"{sealed} does not decrypt to the deposited archive")
    finally:
        opened.unlink()


# --- Small shared helpers -----------------------------------------------------------


def proc_status_kib(pid: int | str, name: str) -> int:
    """A ``kB`` field (VmRSS, VmHWM) of ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.split()[0])
    raise KeyError(f"/proc/{pid}/status has no {name}")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, to show how busy the machine was."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def require_tools() -> None:
    """Fail early, with the reason, when a needed tool is missing."""
    if not os.access(TIME, os.X_OK):
        raise RuntimeError(f"{TIME} is needed to measure peak RSS (Debian package `time`)")
    for tool in ("age", "age-keygen"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the `{tool}` tool is needed (Debian package `age`)")


def output_of(argv: list[str | Path]) -> str:
    """Standard output (or error) of a short command, stripped."""
    result = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, check=True)
    return (result.stdout or result.stderr).strip()


def _run_checked(argv: list[str], *, env: dict[str, str]) -> str:
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def log(message: str) -> None:
    """Progress on standard error, in the driver's indentation."""
    print(f"   {message}", file=sys.stderr, flush=True)


# --- The child side: runs inside the throwaway installation ------------------------

#: Pipeline steps timed in the child: (label, module, attribute, nested). Each is
#: looked up by name at call time by its caller, so replacing the attribute times
#: every call. A nested step is part of the step listed just before it.
_STEPS: tuple[tuple[str, str, str, bool], ...] = (
    (
        "receive: stream the body to the intake file, hash it",
        "escrow.services.intake",
        "_stream_body",
        False,
    ),
    ("check: inspect, write and sign the manifest", "escrow.services.intake", "_check", False),
    ("of which the archive inspection", "escrow.services.intake", "inspect_archive", True),
    ("seal: encrypt into the outbox, fsync, rename", "escrow.services.intake", "_seal", False),
    ("of which the age encryption", "vault.age", "encrypt", True),
    ("store in the primary site: write, fsync, read back", "escrow.services.intake", "_put", False),
    ("replicate to the other sites", "escrow.tasks", "deposit_replicate_copies", False),
)


def _instrument() -> dict[str, float]:
    """Wrap each of ``_STEPS`` so its wall time adds up in the returned dict."""
    import importlib

    spent: dict[str, float] = {}
    for label, module_name, attribute, _nested in _STEPS:
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)
        spent[label] = 0.0

        def wrapper(
            *args: Any, _original: Any = original, _label: str = label, **kwargs: Any
        ) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - started

        setattr(module, attribute, wrapper)
    return spent


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _setup_main(recipient: str) -> None:
    _django()
    from accounts.models import Organisation, Product, User
    from escrow.models import NotaryRecipient
    from escrow.services.tokens import token_create
    from vault.keys import system_signing_key

    vendor = Organisation.objects.create(
        name="Bench Vendor",
        kind=Organisation.Kind.VENDOR,
        country="NL",
        contact_email="vendor@example.com",
    )
    product = Product.objects.create(vendor=vendor, name="Bench product", slug=PRODUCT_SLUG)
    notary = User.objects.create_user(
        "notary@example.com", None, full_name="Bench Notary", role="notary"
    )
    NotaryRecipient.objects.create(notary=notary, label="bench", public_key=recipient)
    system_signing_key()  # generated once here, not during a timed deposit
    issued = token_create(product=product, label="bench", actor=None)
    print(json.dumps({"token": issued.secret}))


def _seal_main(archive: Path, version: str, sha256: str, token_text: str) -> None:
    _django()
    import resource

    from escrow.models import Deposit, DepositToken
    from escrow.services.intake import deposit_receive
    from escrow.services.recipients import seal_recipients
    from vault.keys import system_signing_key

    prefix = token_text.split("_")[1]
    token = DepositToken.objects.select_related("product").get(prefix=prefix)
    # Warm up what every deposit needs before the baseline: the recipients
    # query, the signing key, the task module (imported on first store).
    seal_recipients()
    system_signing_key()
    import escrow.tasks  # noqa: F401

    steps = _instrument()
    baseline_rss = proc_status_kib("self", "VmRSS")
    baseline_hwm = proc_status_kib("self", "VmHWM")
    with archive.open("rb") as body:
        started = time.perf_counter()
        received = deposit_receive(
            token=token,
            version=version,
            body=body,
            claimed_sha256=sha256,
            content_length=archive.stat().st_size,
            pipeline={"commit": "bench"},
        )
        seconds = time.perf_counter() - started
    deposit = Deposit.objects.get(pk=received.deposit.pk)
    sealed = deposit.copies.filter(kind="sealed").order_by("pk").first()
    result = {
        "seconds": seconds,
        "baseline_rss_kib": baseline_rss,
        "baseline_hwm_kib": baseline_hwm,
        "peak_hwm_kib": proc_status_kib("self", "VmHWM"),
        # Linux reports ru_maxrss in KiB.
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "state": deposit.state,
        "problem": deposit.problem,
        "steps": steps,
        "sealed_key": sealed.key if sealed else "",
    }
    print(json.dumps(result))


def _child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.escrow_env")
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="add the product, notary key and token")
    setup.add_argument("recipient")
    sealing = commands.add_parser("seal", help="time one deposit_receive")
    sealing.add_argument("--archive", type=Path, required=True)
    sealing.add_argument("--version", required=True)
    sealing.add_argument("--sha256", required=True)
    sealing.add_argument("--token", required=True)
    options = parser.parse_args(argv)
    if options.command == "setup":
        _setup_main(options.recipient)
    else:
        _seal_main(options.archive, options.version, options.sha256, options.token)


def iter_steps(runs: list[SealRun]) -> Iterator[tuple[str, float, bool]]:
    """Each step's label, median seconds over ``runs`` and whether it is nested in the
    step before it, in pipeline order."""
    import statistics

    for label, _module, _attribute, nested in _STEPS:
        yield label, statistics.median(run.steps.get(label, 0.0) for run in runs), nested


if __name__ == "__main__":
    _child_main()
