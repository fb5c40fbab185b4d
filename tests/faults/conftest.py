"""The world a fault test breaks: a database shared with real processes, sites, an intake.

Every fault test runs the real parts in their own processes (gunicorn, a Celery
worker, ``manage.py run_due``) against a database that this test process reads
too, so it can watch a deposit's state while it injects the fault:

- the embedded default (no DATABASE_URL): a SQLite file in the test's own
  ``ESCROW_VAR_DIR``, which is where every process of the embedded default
  keeps it; copied from a template migrated once per session;
- PostgreSQL (DATABASE_URL set, as in CI): a database of the test's own, made
  from a template migrated once per session and dropped afterwards.

The test process's ``default`` connection is pointed at that database for the
test (pytest-django's own test database is left alone), and ``World.env`` is the
environment that points a subprocess at the same database, sites and intake.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connections

from tests import archives
from tests.faults.gunicorn import Gunicorn
from tests.faults.relay import Relay
from tests.s3server import MotoServer, new_bucket, s3_client, s3_site_config
from vault.sites import StorageSite

ROOT = Path(__file__).resolve().parents[2]
# Short, so a killed process's lease runs out within the test (the real default is
# minutes), yet longer than any one step between two renewals takes here.
LEASE_SECONDS = 8
AGE_HEADER = b"age-encryption.org/v1"
STAFF_EMAIL = "staff@escrow.example"
SETTLED_STATES = ("stored", "replicated", "acknowledged")


def _inherited_environment() -> dict[str, str]:
    """This process's environment without what a fault test decides for itself."""
    own = ("ESCROW_SITE", "DATABASE_URL", "CELERY_", "ESCROW_INTAKE_DIR", "ESCROW_VAR_DIR")
    return {name: value for name, value in os.environ.items() if not name.startswith(own)}


def _postgres_admin() -> Any:
    """An autocommit psycopg connection to the server's ``postgres`` database."""
    import psycopg

    db = connections["default"].settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def _on_postgresql() -> bool:
    return connections["default"].vendor == "postgresql"


def _database_url(name: str) -> str:
    db = connections["default"].settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def fault_database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database that each fault test copies: a file path or a PostgreSQL name."""
    base = _inherited_environment()
    if _on_postgresql():
        name = f"escrow_faults_template_{uuid.uuid4().hex[:10]}"
        with _postgres_admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            _migrate(
                base
                | {
                    "DATABASE_URL": _database_url(name),
                    "ESCROW_VAR_DIR": str(tmp_path_factory.mktemp("template-var")),
                }
            )
            yield name
        finally:
            with _postgres_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    var = tmp_path_factory.mktemp("template-var")
    _migrate(base | {"ESCROW_VAR_DIR": str(var)})
    yield str(var / "db.sqlite3")


@contextmanager
def _default_connection_to(name: str) -> Iterator[None]:
    """Point this thread's ``default`` connection at another database for a while."""
    connection = connections["default"]
    saved_settings, saved_connection = connection.settings_dict, connection.connection
    connection.connection = None
    connection.settings_dict = {**saved_settings, "NAME": name, "CONN_MAX_AGE": 0}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict, connection.connection = saved_settings, saved_connection


@pytest.fixture
def fault_database(
    fault_database_template: str, settings: Any, django_db_blocker: Any
) -> Iterator[dict[str, str]]:
    """This test's own database; returns the environment that points a subprocess at it."""
    if _on_postgresql():
        name = f"escrow_faults_{uuid.uuid4().hex[:12]}"
        with _postgres_admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{fault_database_template}"')
        env = {"DATABASE_URL": _database_url(name), "DATABASE_CONN_MAX_AGE": "0"}
    else:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        name = str(settings.VAR_DIR / "db.sqlite3")
        shutil.copyfile(fault_database_template, name)
        env = {}
    try:
        with django_db_blocker.unblock(), _default_connection_to(name):
            yield env
    finally:
        if _on_postgresql():
            with _postgres_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def site_environment(sites: list[StorageSite]) -> dict[str, str]:
    """The ESCROW_SITES variables (config/storage_sites.py) that describe ``sites``."""
    environment = {"ESCROW_SITES": ",".join(site["name"] for site in sites)}
    for site in sites:
        prefix = f"ESCROW_SITE_{site['name'].upper()}"
        if site["kind"] == "local":
            environment[f"{prefix}_URL"] = f"file://{site['path']}"
            continue
        environment |= {
            f"{prefix}_URL": f"s3://{site['bucket']}",
            f"{prefix}_ENDPOINT": site["endpoint_url"],
            f"{prefix}_REGION": site["region"],
            f"{prefix}_ACCESS_KEY_ID": site["access_key_id"],
            f"{prefix}_SECRET_ACCESS_KEY": site["secret_access_key"],
        }
    return environment


def zip_of(size: int, *, seed: str) -> bytes:
    """``archive_of`` as a zip: the one format the intake spools (its directory is last)."""
    buffer = io.BytesIO()
    files = dict(archives.PROJECT) | {
        "project/NOTES.md": f"fault test {seed}\n".encode(),
        "project/assets/blob.bin": os.urandom(size),
    }
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def archive_of(size: int, *, seed: str) -> bytes:
    """A plain tar of a complete little project plus ``size`` random bytes (which do not
    compress, so the archive's size is what moves over the wire and through age)."""
    buffer = io.BytesIO()
    files = dict(archives.PROJECT) | {
        "project/NOTES.md": f"fault test {seed}\n".encode(),
        "project/assets/blob.bin": os.urandom(size),
    }
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class Answer:
    """What the pipeline was told: an HTTP answer, or the error that replaced it."""

    status: int | None = None
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None


class Upload(threading.Thread):
    """A pipeline's PUT of an archive, streamed in chunks at ``rate`` bytes a second
    (``None``: at full speed), in a thread, so a test can kill the server meanwhile."""

    def __init__(
        self, url: str, body: bytes, secret: str, *, rate: float | None = None, timeout: float = 90
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.secret, self.rate, self.timeout = url, body, secret, rate, timeout
        self.sent = 0
        self.answer = Answer()

    def run(self) -> None:
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout
        )
        try:
            connection.putrequest("PUT", parts.path)
            for name, value in {
                "Authorization": f"Bearer {self.secret}",
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(self.body)),
                "X-Archive-SHA256": archives.sha256(self.body),
                "X-Pipeline-Commit": "fault0001",
            }.items():
                connection.putheader(name, value)
            connection.endheaders()
            chunk = 64 * 1024
            try:
                for start in range(0, len(self.body), chunk):
                    piece = self.body[start : start + chunk]
                    connection.send(piece)
                    self.sent += len(piece)
                    if self.rate:
                        time.sleep(len(piece) / self.rate)
            except OSError as error:
                # The server may answer before it reads the whole body (and then close):
                # what it said is the answer, if it said anything.
                sending_error: OSError | None = error
            else:
                sending_error = None
            try:
                response = connection.getresponse()
            except (OSError, http.client.HTTPException):
                if sending_error is not None:
                    raise sending_error from None
                raise
            raw = response.read()
            self.answer = Answer(
                status=response.status,
                body=json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode()[:500]},
                headers={name.lower(): value for name, value in response.getheaders()},
            )
        except (OSError, http.client.HTTPException) as error:
            self.answer = Answer(error=error)
        finally:
            connection.close()


@dataclass
class World:
    """One fault test's deployment: its database, sites, intake folder, token and the
    processes it starts (stopped at the end)."""

    tmp: Path
    database_env: dict[str, str]
    product_slug: str
    secret: str
    sites: list[StorageSite]
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Gunicorn] = field(default_factory=list)

    @property
    def intake(self) -> Path:
        return Path(settings.ESCROW_INTAKE_DIR)

    @property
    def env(self) -> dict[str, str]:
        """The environment of every process of this deployment."""
        return (
            _inherited_environment()
            | self.database_env
            | site_environment(self.sites)
            | {
                "ESCROW_VAR_DIR": str(settings.VAR_DIR),
                "ESCROW_INTAKE_DIR": str(settings.ESCROW_INTAKE_DIR),
                "ESCROW_DEPOSIT_LEASE_SECONDS": str(LEASE_SECONDS),
                # No build verification, as in the test process (tests/conftest.py): its
                # intake copy and after-answer build are tested in tests/verification/.
                "ESCROW_VERIFY_ENABLED": "false",
                "ESCROW_STAFF_EMAILS": STAFF_EMAIL,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
                # Tasks run in the process that queues them, as in the embedded default.
                "CELERY_BROKER_URL": "",
            }
            | self.extra_env
        )

    def use_sites(self, sites: list[StorageSite]) -> None:
        """Configure the sites here and for every process started from now on."""
        self.sites = sites
        settings.ESCROW_SITES = sites
        from vault.site_clients import all_sites

        for site in all_sites():
            site.ensure_ready()

    def gunicorn(self, *, workers: int = 1) -> Gunicorn:
        server = Gunicorn(
            self.env, self.tmp / f"gunicorn-{len(self.processes)}.log", workers=workers
        )
        self.processes.append(server)
        return server.start()

    def deposit_url(self, server: Gunicorn, version: str) -> str:
        return f"{server.url}/api/v1/products/{self.product_slug}/deposits/{version}"

    def upload(
        self, server: Gunicorn, version: str, body: bytes, *, rate: float | None = None
    ) -> Upload:
        upload = Upload(self.deposit_url(server, version), body, self.secret, rate=rate)
        upload.start()
        return upload

    def put(self, server: Gunicorn, version: str, body: bytes) -> Answer:
        upload = self.upload(server, version, body)
        upload.join(120)
        assert not upload.is_alive(), "the upload got no answer within 120 s"
        return upload.answer

    def status(self, server: Gunicorn, deposit_id: int) -> dict[str, Any]:
        """The pipeline's status URL, as the pipeline reads it."""
        parts = urlsplit(server.url)
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )
        try:
            connection.request(
                "GET",
                f"/api/v1/deposits/{deposit_id}",
                headers={"Authorization": f"Bearer {self.secret}"},
            )
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        assert response.status == 200, raw[:500]
        return dict(json.loads(raw))

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``manage.py ARGS`` in a process of its own, with this deployment's environment."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def relays() -> Iterator[Callable[[str], Relay]]:
    """Make relays to URLs; every relay is cut when the test ends."""
    made: list[Relay] = []

    def make(url: str) -> Relay:
        relay = Relay.to_url(url)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.cut()


def s3_site_behind(name: str, moto: MotoServer, relay: Relay) -> StorageSite:
    """An S3 site in a fresh bucket of ``moto``, configured at the relay's address."""
    bucket = new_bucket(s3_client(moto.endpoint_url), prefix=name)
    return s3_site_config(name, bucket, relay.url)


@pytest.fixture
def world(fault_database: dict[str, str], settings: Any, tmp_path: Path) -> Iterator[World]:
    """A vendor's product with a deposit token, a notary key to seal for, a member of
    staff to alert, and the embedded default's two local-folder sites."""
    from accounts.models import Role
    from escrow.models import NotaryRecipient
    from escrow.services.tokens import token_create
    from tests.factories import ProductFactory, UserFactory
    from vault.age import X25519Identity

    settings.ADMINS = [("Escrow staff", STAFF_EMAIL)]
    staff = UserFactory(email=STAFF_EMAIL, role=Role.STAFF, organisation=None)
    notary = UserFactory(email="notary@notaris.example", role=Role.NOTARY, organisation=None)
    NotaryRecipient.objects.create(
        notary=notary,
        label="office safe",
        public_key=X25519Identity.generate().recipient().to_string(),
    )
    product = ProductFactory(name="Ledger Pro", slug="ledger-pro")
    issued = token_create(product=product, label="fault pipeline", actor=staff)
    current = World(
        tmp=tmp_path,
        database_env=fault_database,
        product_slug=product.slug,
        secret=issued.secret,
        sites=list(settings.ESCROW_SITES),
    )
    try:
        yield current
    finally:
        current.stop()


# -- what every fault test checks ---------------------------------------------------------


def plaintext_left(intake: Path) -> list[str]:
    """Files in the intake folder that are not complete age ciphertext: plaintext, or
    partial files of any kind."""
    left: list[str] = []
    if not intake.exists():
        return left
    for path in sorted(intake.rglob("*")):
        if not path.is_file():
            continue
        try:
            with path.open("rb") as file:
                head = file.read(len(AGE_HEADER))
        except FileNotFoundError:
            continue  # removed since it was listed (a worker's clean-up after its answer)
        if head != AGE_HEADER or "partial" in path.name:
            left.append(f"{path.relative_to(intake)} ({path.stat().st_size} bytes)")
    return left


def missing_copies(deposit: Any) -> list[str]:
    """Every (site, part) of the deposit that is not recorded, or whose recorded object is
    not in the site with the recorded hash."""
    from escrow.models import DepositCopy
    from vault.site_clients import all_sites

    missing = []
    for site in all_sites():
        for kind in DepositCopy.Kind.values:
            copy = DepositCopy.objects.filter(deposit=deposit, site=site.name, kind=kind).first()
            if copy is None:
                missing.append(f"{site.name}/{kind}: no copy recorded")
                continue
            try:
                actual = site.hash(copy.key)
            except Exception as error:
                missing.append(f"{site.name}/{kind}: {copy.key} unreadable: {error}")
                continue
            if actual != copy.sha256:
                missing.append(f"{site.name}/{kind}: {copy.key} has {actual}, not {copy.sha256}")
    return missing


def staff_mails_about(output: str, needle: str) -> list[str]:
    """The console e-mail backend's messages in ``output`` addressed to staff that
    mention ``needle``."""
    messages = output.split("-" * 79)
    return [m for m in messages if STAFF_EMAIL in m and "To:" in m and needle in m]


def assert_answer_truthful(answer: Answer, deposit_state: str) -> None:
    """The pipeline's answer never claims more than the database holds: 200 only for a
    deposit safely stored; 202 with the state as it is; errors never say stored."""
    assert answer.error is None, f"the upload got no answer: {answer.error!r}"
    state = answer.body.get("state")
    if answer.status == 200:
        assert state in SETTLED_STATES, f"200 'already deposited' for a {state} deposit"
        assert deposit_state in SETTLED_STATES, f"200 while the database says {deposit_state}"
    elif answer.status == 202:
        assert state not in ("failed", "rejected"), f"202 for a {state} deposit"
    elif answer.status is not None and answer.status >= 500:
        # An error claims nothing (a 500 when the database itself went away included);
        # the body of one must not say the deposit is safe either.
        assert state not in SETTLED_STATES, f"{answer.status} yet the body says {state}"
    else:
        pytest.fail(f"unexpected answer {answer.status}: {answer.body}")
    if state is not None:
        order = ["received", "verified", "sealed", "stored", "replicated", "acknowledged"]
        if state in order and deposit_state in order:
            assert order.index(state) <= order.index(deposit_state), (
                f"the answer says {state}, the database {deposit_state}"
            )


def wait_for(condition: Callable[[], Any], *, timeout: float, message: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    pytest.fail(message())


def replicated_after_answer(deposit: Any, server: Gunicorn, *, timeout: float = 60) -> None:
    """Follow the deposit as the pipeline follows ``status_url``: the web worker answers
    ``stored`` and replicates after its answer (in-process tasks run after the answer),
    so ``replicated`` comes a moment later. Fails with the deposit's state if it never does."""

    def done() -> bool:
        deposit.refresh_from_db()
        return bool(deposit.state == "replicated")

    wait_for(
        done,
        timeout=timeout,
        message=lambda: f"never replicated: {deposit.state} {deposit.problem}\n{server.log_text()}",
    )


def kill_when(
    server: Gunicorn, condition: Callable[[], bool], *, timeout: float, what: str
) -> list[int]:
    """SIGKILL the gunicorn workers the moment ``condition`` holds."""
    wait_for(condition, timeout=timeout, message=lambda: f"never {what}:\n{server.log_text()}")
    killed = server.kill_workers()
    return killed


def wait_for_lease_to_expire(deposit_id: int) -> None:
    """Until the lease on the deposit (held by a process now dead) has run out."""
    from django.utils import timezone

    from escrow.models import Deposit

    deadline = time.monotonic() + LEASE_SECONDS + 30
    while time.monotonic() < deadline:
        expires = Deposit.objects.filter(pk=deposit_id).values_list("lease_expires_at", flat=True)
        until = expires.first() if expires else None
        if until is None or until < timezone.now():
            time.sleep(0.2)
            return
        time.sleep(0.2)
    pytest.fail("the dead process's lease never expired")
