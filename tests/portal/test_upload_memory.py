"""A real server process, a signed-in customer, 15 evidence files of 20 MiB each sent
as one streaming request: the server refuses it naming the limit, stores nothing, and
its peak memory (VmHWM) stays far below the 300 MiB it was sent.

Before the fix every file was read into memory before the count was checked: the
same request raised the server to 427 MiB."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024**2
FILES = 15
FILE_SIZE = 20 * MiB
PEAK_LIMIT = 150 * MiB
EMAIL, PASSWORD = "alice@northwind.example", "a long and unguessable passphrase"
PDF_HEAD = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"

CREATE_CUSTOMER = f"""
from accounts.models import Organisation, Role, User
organisation = Organisation.objects.create(
    name="Northwind Logistics B.V.", kind=Organisation.Kind.CUSTOMER, country="NL",
    contact_email="contact@northwind.example",
)
User.objects.create_user(
    email="{EMAIL}", password="{PASSWORD}", full_name="Alice", role=Role.CUSTOMER,
    organisation=organisation,
)
"""
COUNT_CLAIMS = """
from escrow.models import ClaimEvidence, ReleaseClaim
from records.models import StoredFile
print(ReleaseClaim.objects.count(), ClaimEvidence.objects.count(), StoredFile.objects.count())
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(var_dir: Path) -> dict[str, str]:
    """The embedded default (SQLite, local sites, tasks in-process) under ``var_dir``,
    whatever services the calling environment points at."""
    own = ("ESCROW_", "DJANGO_", "DATABASE_", "CELERY_", "EMAIL_")
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(own)}
    return inherited | {
        "ESCROW_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    assert match is not None, status
    return int(match.group(1)) * 1024


class Browser:
    """Just enough of a browser: one server, its cookies, form posts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: SimpleCookie = SimpleCookie()

    def request(
        self, method: str, path: str, body: bytes | Iterator[bytes] | None = None, **headers: str
    ) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in self.cookies.items())
        if cookie:
            headers["Cookie"] = cookie
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for value in response.headers.get_all("Set-Cookie") or []:
                self.cookies.load(value)
            return response.status, dict(response.headers), response.read().decode()
        finally:
            connection.close()

    def csrf_token(self, path: str) -> str:
        status, _, page = self.request("GET", path)
        assert status == 200, page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None, page
        return token.group(1)


def wait_until_serving(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("the server did not start:\n" + log.read_text())


def multipart_stream(fields: dict[str, str], files: int, size: int) -> tuple[Iterator[bytes], int]:
    """A form body of ``files`` PDF-looking files of ``size`` bytes, generated as it is
    sent (the test process never holds it either), and its length."""
    boundary = "----memory-test-boundary"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ).encode()
    part_heads = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="documents"; '
            f'filename="ruling-{n}.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        for n in range(files)
    ]
    tail = f"--{boundary}--\r\n".encode()
    filler = b"%" * MiB

    def body() -> Iterator[bytes]:
        yield head
        for part_head in part_heads:
            yield part_head + PDF_HEAD
            left = size - len(PDF_HEAD)
            while left:
                chunk = filler[: min(left, MiB)]
                left -= len(chunk)
                yield chunk
            yield b"\r\n"
        yield tail

    length = len(head) + sum(len(h) + size + 2 for h in part_heads) + len(tail)
    return body(), length


def test_fifteen_files_of_twenty_mib_are_refused_in_little_memory(tmp_path) -> None:
    var_dir = tmp_path / "var"
    env = server_environment(var_dir)
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "--no-imports", "-c", CREATE_CUSTOMER)

    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until_serving(server, port, log)
        browser = Browser(port)
        token = browser.csrf_token("/portal/login/")
        status, headers, page = browser.request(
            "POST",
            "/portal/login/",
            urlencode(
                {"username": EMAIL, "password": PASSWORD, "csrfmiddlewaretoken": token}
            ).encode(),
            **{"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (status, headers.get("Location")) == (302, "/portal/"), page
        token = browser.csrf_token("/portal/claims/")
        before = peak_rss(server.pid)

        body, length = multipart_stream(
            {
                "csrfmiddlewaretoken": token,
                "product": "1",
                "condition": "insolvency",
                "statement": "The vendor was declared bankrupt on 1 November.",
            },
            FILES,
            FILE_SIZE,
        )
        started = time.monotonic()
        status, _, page = browser.request(
            "POST",
            "/portal/claims/",
            body,
            **{
                "Content-Type": "multipart/form-data; boundary=----memory-test-boundary",
                "Content-Length": str(length),
            },
        )
        seconds = time.monotonic() - started
        peak = peak_rss(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert status == 400, page
    assert "At most 10 documents at once." in page and "Nothing was stored" in page
    assert peak < PEAK_LIMIT, (
        f"peak RSS {peak / MiB:.0f} MiB (before the upload {before / MiB:.0f} MiB) "
        f"for {FILES} x {FILE_SIZE // MiB} MiB in {seconds:.1f} s"
    )
    # Nothing was kept: no claim, no evidence, no stored file, no spooled upload left.
    counts = manage(env, "shell", "--no-imports", "-c", COUNT_CLAIMS).splitlines()[-1]
    assert counts.split() == ["0", "0", "0"]
    assert [p for p in (var_dir / "intake").rglob("*") if p.is_file()] == []
    assert [p for p in (var_dir / "vault").rglob("*") if p.is_file()] == []
