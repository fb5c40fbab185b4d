"""A real S3 endpoint over HTTP for tests, and a guard that no test deletes from the vault.

Not a test module: a conftest or a test module imports the fixtures from here
(``from tests.s3server import s3_endpoint, vault_delete_guard``) or the whole
module is registered with ``pytest_plugins = ["tests.s3server"]`` in the root
conftest.

- ``MotoServer`` runs ``python -m moto.server`` in a subprocess on 127.0.0.1 at
  a free port: real HTTP, real botocore, nothing patched, and a separate
  process, so its memory does not pollute tracemalloc in the tests.
- ``FlakyEndpoint`` is a TCP relay in front of it that a test can cut and
  restore on the same port: the endpoint vanishes mid-transfer (open
  connections are reset) and comes back with its buckets intact, which is
  what a replica outage looks like. (``MotoServer.restart`` also keeps the
  port, but a new moto process starts empty.)
- ``DeleteGuard`` refuses, at the botocore level, every call that could erase
  vault data: ``DeleteObject``, ``DeleteObjects``, ``DeleteBucket*``,
  ``PutBucketLifecycle*`` and suspending versioning. It hooks every client any
  botocore session creates, so it covers code under test as well as tests.
"""

from __future__ import annotations

import functools
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
import pytest
from botocore.config import Config

from tests.faults.relay import Relay
from vault.sites import StorageSite

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
_STARTUP_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def closed_endpoint_url() -> str:
    """An http URL whose port refuses connections: an unreachable S3 endpoint."""
    return f"http://127.0.0.1:{free_port()}"


class MotoServer:
    """moto in server mode as a child process (``python -m moto.server``)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkdtemp(prefix="moto-")) / "server.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers HTTP."""
        if self._process is not None:
            return
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        tail = self._log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"moto server did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        """Stop the server process (its buckets are gone with it)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port; the new process starts with no buckets."""
        self.stop()
        self.start()


class FlakyEndpoint(Relay):
    """A TCP relay on its own port in front of an S3 server, which a test can cut and restore.

    ``stop()`` closes the listening socket and resets every open connection, so
    clients see refused connections; ``start()`` listens on the same port again.
    The server behind keeps its state throughout. (The fault suite's ``Relay``,
    under the names the storage-site tests use.)
    """

    def __init__(self, upstream_url: str, port: int = 0) -> None:
        host, _, upstream_port = upstream_url.removeprefix("http://").partition(":")
        super().__init__((host, int(upstream_port)), port)

    @property
    def endpoint_url(self) -> str:
        return self.url

    @property
    def running(self) -> bool:
        return not self.is_cut

    def start(self) -> None:
        self.restore()

    def stop(self) -> None:
        self.cut()


# -- the delete guard ------------------------------------------------------------------------


class VaultDeleteForbiddenError(AssertionError):
    """Raised by the guard in place of an S3 call that could erase vault data."""


def _forbidden(operation: str, params: dict[str, Any]) -> bool:
    if operation in {"DeleteObject", "DeleteObjects"}:
        return True
    if operation.startswith(("DeleteBucket", "PutBucketLifecycle")):
        return True
    # Suspended versioning makes the next overwrite destroy the previous bytes.
    versioning = params.get("VersioningConfiguration") or {}
    return operation == "PutBucketVersioning" and versioning.get("Status") == "Suspended"


class DeleteGuard:
    """Records and refuses erasing S3 calls made while it is the active guard.

    Every bucket counts as a vault bucket unless a test declares it scratch
    with ``allow_bucket`` (say, to try out a lifecycle rule).
    """

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.allowed_buckets: set[str] = set()

    def allow_bucket(self, bucket: str) -> None:
        """Let erasing calls through for a scratch bucket that is no part of any vault."""
        self.allowed_buckets.add(bucket)

    @contextmanager
    def expect_refusal(self) -> Iterator[None]:
        """For testing the guard itself: the block must make exactly one refused call."""
        before = len(self.violations)
        with pytest.raises(VaultDeleteForbiddenError):
            yield
        assert len(self.violations) == before + 1
        self.violations.pop()


_active_guards: list[DeleteGuard] = []
_HANDLER_ID = "escrow-vault-delete-guard"


def _refuse_erasing_calls(params: dict[str, Any], model: Any, **_: Any) -> None:
    """botocore ``before-parameter-build.s3`` handler: runs before a request is built or signed."""
    operation = str(model.name)
    if not _forbidden(operation, params):
        return
    bucket = params.get("Bucket")
    guard = _active_guards[-1] if _active_guards else None
    if guard is not None and bucket in guard.allowed_buckets:
        return
    message = f"{operation} on bucket {bucket!r}: the vault never erases anything"
    if guard is not None:
        guard.violations.append(message)
    raise VaultDeleteForbiddenError(message)


def watch_client(client: Any) -> None:
    """Put one client under the guard (clients created after the guard is installed already are)."""
    # before-parameter-build also runs for generate_presigned_url, so a presigned
    # DELETE is refused too.
    client.meta.events.register(
        "before-parameter-build.s3", _refuse_erasing_calls, unique_id=_HANDLER_ID
    )


@contextmanager
def delete_guard_installed() -> Iterator[None]:
    """Hook every botocore client created in this process while the block runs.

    botocore.session.Session.create_client is where every client comes from
    (boto3.client, boto3.session.Session().client, S3Site's own session), so
    wrapping it covers clients the suite never sees directly.
    """
    original: Callable[..., Any] = botocore.session.Session.create_client

    def create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        watch_client(client)
        return client

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session.Session, "create_client", create_client)
        yield


@pytest.fixture(scope="session")
def _delete_guard_hooks() -> Iterator[None]:
    with delete_guard_installed():
        yield


@pytest.fixture
def vault_delete_guard(_delete_guard_hooks: None) -> Iterator[DeleteGuard]:
    """Fail the test if it (or the code it calls) tried to erase anything from a bucket.

    The offending call itself raises VaultDeleteForbiddenError before any
    request leaves; the teardown also fails the test, in case the code under
    test swallowed that exception.
    """
    guard = DeleteGuard()
    _active_guards.append(guard)
    try:
        yield guard
    finally:
        _active_guards.remove(guard)
    if guard.violations:
        pytest.fail("erasing S3 calls were made:\n" + "\n".join(guard.violations))


# -- moto fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server for the whole session; buckets get unique names so tests do not meet."""
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint(moto_server: MotoServer) -> str:
    """The endpoint URL of the session's moto server."""
    return moto_server.endpoint_url


@pytest.fixture
def flaky_s3_endpoint(moto_server: MotoServer) -> Iterator[FlakyEndpoint]:
    """A second endpoint to the same server that the test can ``stop()`` and ``start()``."""
    endpoint = FlakyEndpoint(moto_server.endpoint_url)
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


_session_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def s3_client(endpoint_url: str, *, max_attempts: int = 2) -> S3Client:
    """A plain boto3 client for test set-up and inspection (under the guard like any other)."""
    # One session for the suite: botocore then parses the S3 model once, not per client.
    with _session_lock:
        return _session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": max_attempts},
                connect_timeout=2,
                read_timeout=30,
            ),
        )


def new_bucket(client: S3Client, *, prefix: str = "vault", object_lock: bool = False) -> str:
    """Create a bucket with a unique name and return the name."""
    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
    return name


def s3_site_config(name: str, bucket: str, endpoint_url: str) -> StorageSite:
    """A StorageSite dict for an S3 site on a test endpoint."""
    return StorageSite(
        name=name,
        kind="s3",
        path="",
        bucket=bucket,
        endpoint_url=endpoint_url,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
