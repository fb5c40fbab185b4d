"""A real gunicorn serving the project's WSGI app, for fault tests that kill its workers.

Not a test module. ``Gunicorn(env, log).start()`` runs ``python -m gunicorn
config.wsgi:application`` on a free loopback port with the environment it is
given (the test's database, sites and intake folder), waits until it answers,
and can then name its worker processes, so a test can SIGKILL the one serving
an upload while it streams, seals or stores. The master starts a new worker in
its place, as in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.s3server import free_port

ROOT = Path(__file__).resolve().parents[2]
_STARTUP_SECONDS = 60.0


def children_of(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (read from /proc: no psutil here)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


class Gunicorn:
    """One gunicorn master with ``workers`` sync workers, on 127.0.0.1 at a free port."""

    def __init__(self, env: Mapping[str, str], log: Path, *, workers: int = 1) -> None:
        self.env = dict(env)
        self.log = log
        self.workers = workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def master_pid(self) -> int:
        assert self.process is not None, "gunicorn is not running"
        return self.process.pid

    def start(self) -> Gunicorn:
        """Start the master and wait until a worker answers HTTP."""
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "config.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--worker-class",
                    "sync",
                    # Long enough for any upload a test sends; the tests kill, never time out.
                    "--timeout",
                    "120",
                    "--graceful-timeout",
                    "5",
                    # One control socket per user by default: parallel servers would share it.
                    "--no-control-socket",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.wait_until_serving()
        return self

    def wait_until_serving(self) -> None:
        """Until a worker answers (the API says 401 without a token), or fail with the log."""
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"{self.url}/api/v1/deposits/1", timeout=2)
            except urllib.error.HTTPError:
                return  # any HTTP answer: a worker is serving
            except OSError:
                time.sleep(0.1)
            else:
                return
        raise RuntimeError(f"gunicorn did not start on {self.url}:\n{self.log_text()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.master_pid)

    def kill_workers(self) -> list[int]:
        """SIGKILL every worker (the one serving the request among them) and return their ids.
        The master notices and starts new workers."""
        killed = self.worker_pids()
        assert killed, "gunicorn has no worker to kill:\n" + self.log_text()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        return killed

    def wait_for_new_workers(self, killed: list[int]) -> None:
        """Until the master has replaced the killed workers and a new one answers."""
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            current = self.worker_pids()
            if len(current) >= self.workers and not set(current) & set(killed):
                self.wait_until_serving()
                return
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not replace its workers:\n{self.log_text()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
