"""Every list page of the three doors at scale, on PostgreSQL, with Django's test client.

    .venv/bin/python -m bench.list_pages                   # writes docs/benchmarks.md
    .venv/bin/python -m bench.list_pages --repeat 10 --write -
    make bench-lists                                       # the same

It creates its own database (``--database-url``, default
``postgres://postgres@127.0.0.1:5432/escrow_bench``: dropped first if it exists, and
dropped afterwards unless ``--keep``), migrates it, loads the demo and the scaled
history (``manage.py demo --scale``: 10,000 deposits, 1,000 claims, 5,000 invoices,
50,000+ audit entries), then, in a fresh process with DEBUG off, signs in as the
demo customer (Alice, Northwind), the notary and staff (the second factor passed
the way the tests pass it) and renders each page ``--repeat`` times after two
warm-up requests. It reports the median and 95th percentile of the wall time per
request, the queries one request runs and the bytes of the page; the target is a
p95 under 150 ms for every page.

A page whose URL name does not resolve (not built yet) is listed as skipped."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.run import DEFAULT_DOCUMENT, REPO, Section, machine_summary, write_sections

SECTION_ID = "list-pages"
TITLE = "List pages at scale"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/escrow_bench"
TARGET_P95_MS = 150.0
DEFAULT_REPEAT = 30

# (door, who signs in, what the page is, URL name, its arguments, query string)
PAGES: list[tuple[str, str, str, str, tuple[str, ...], str]] = [
    ("portal", "customer", "dashboard", "portal:dashboard", (), ""),
    ("portal", "customer", "product page (Ledger Pro)", "portal:product", ("ledger-pro",), ""),
    ("portal", "customer", "invoices", "portal:invoices", (), ""),
    ("portal", "customer", "claims", "portal:claims", (), ""),
    ("portal", "customer", "notifications", "portal:notifications", (), ""),
    ("notary", "notary", "dashboard (register)", "notary:dashboard", (), ""),
    ("notary", "notary", "deposits", "notary:deposits", (), ""),
    ("notary", "notary", "claims", "notary:claims", (), ""),
    ("notary", "notary", "notifications", "notary:notifications", (), ""),
    ("admin", "staff", "invoices", "admin:billing_invoice_changelist", (), ""),
    ("admin", "staff", "audit log", "admin:records_auditentry_changelist", (), ""),
    (
        "admin",
        "staff",
        "audit log, searched",
        "admin:records_auditentry_changelist",
        (),
        "q=deposit.acknowledge",
    ),
    (
        "admin",
        "staff",
        "audit log, page 1,000",
        "admin:records_auditentry_changelist",
        (),
        "p=1000",
    ),
    ("admin", "staff", "deposits", "admin:escrow_deposit_changelist", (), ""),
    ("admin", "staff", "claims", "admin:escrow_releaseclaim_changelist", (), ""),
    ("admin", "staff", "notifications", "admin:records_notification_changelist", (), ""),
]
PEOPLE = {
    "customer": "alice@northwind.example",
    "notary": "notary@notaris.example",
    "staff": "staff@acme.example",
}


def _environment(database_url: str, var_dir: Path, *, debug: bool) -> dict[str, str]:
    """The shell's environment without this installation's settings, pointed at the
    benchmark's database and a throwaway var directory."""
    prefixes = ("ESCROW_", "DATABASE_", "DJANGO_", "CELERY_", "AGE_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    return env | {
        "DATABASE_URL": database_url,
        "ESCROW_VAR_DIR": str(var_dir),
        "DJANGO_DEBUG": "true" if debug else "false",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }


def _maintenance(database_url: str) -> tuple[str, str]:
    """The URL of the server's ``postgres`` database, and the benchmark database's name."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql") or not name:
        raise SystemExit(f"--database-url must be a postgres://.../NAME URL, not {database_url!r}")
    return urlunsplit(parts._replace(path="/postgres")), name


def _recreate(database_url: str, *, drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    maintenance, name = _maintenance(database_url)
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if not drop_only:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _manage(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def seed(database_url: str, var_dir: Path, *, scale: float) -> dict[str, float]:
    """A new database with the demo and its scaled history, its audit chain verified
    (``manage.py audit_verify`` fails the run otherwise); the seconds each step took."""
    _recreate(database_url)
    env = _environment(database_url, var_dir, debug=True)
    return {
        "migrate": _manage(env, "migrate", "--no-input", "--verbosity", "0"),
        "demo": _manage(env, "demo", "--password", "bench-password-1"),
        "scale": _manage(env, "demo", "--password", "bench-password-1", "--scale", str(scale)),
        # The seeded audit entries extend the hash chain: it must still verify.
        "audit_verify": _manage(env, "audit_verify"),
    }


def measure(repeat: int) -> list[dict[str, Any]]:
    """Render every page ``repeat`` times (in this process, Django set up from the
    environment). Call it in a process whose environment ``_environment`` made."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import NoReverseMatch, reverse

    clients = {who: _signed_in(email) for who, email in PEOPLE.items()}
    results: list[dict[str, Any]] = [{"load_before": os.getloadavg()}]
    for door, who, page, name, args, query in PAGES:
        row: dict[str, Any] = {"door": door, "page": page, "name": name, "who": who}
        try:
            url = reverse(name, args=args) + (f"?{query}" if query else "")
        except NoReverseMatch:
            results.append(row | {"skipped": f"URL name {name} does not resolve (not built yet)"})
            continue
        client = clients[who]
        for _ in range(2):
            client.get(url)
        times, cpu = [], []
        for _ in range(repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        times.sort()
        results.append(
            row
            | {
                "url": url,
                "status": response.status_code,
                "queries": len(queries.captured_queries),
                "bytes": len(response.content),
                "median_ms": statistics.median(times),
                "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
                "cpu_median_ms": statistics.median(cpu),
            }
        )
    results[0]["load_after"] = os.getloadavg()
    return results


def _signed_in(email: str) -> Any:
    """A test client signed in as ``email``, its second factor (TOTP) passed the way
    the tests pass it (tests/conftest.py ``signed_in_client``)."""
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import User

    user = User.objects.get(email=email)
    client = Client()
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def _table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| door | page | status | queries | median | p95 | CPU median | size | target |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in results:
        if "skipped" in row:
            lines.append(f"| {row['door']} | {row['page']} | skipped: {row['skipped']} |||||||")
            continue
        verdict = "met" if row["p95_ms"] < TARGET_P95_MS and row["status"] == 200 else "**missed**"
        lines.append(
            f"| {row['door']} | {row['page']} (`{row['url']}`) | {row['status']} | "
            f"{row['queries']} | {row['median_ms']:.1f} ms | {row['p95_ms']:.1f} ms | "
            f"{row['cpu_median_ms']:.1f} ms | "
            f"{row['bytes'] / 1024:.1f} KiB | {verdict} |"
        )
    return lines


def section(
    results: list[dict[str, Any]], seconds: dict[str, float], *, repeat: int, command: str
) -> Section:
    load = results[0] if results and "load_before" in results[0] else {}
    results = [row for row in results if "door" in row]
    missed = [
        f"{row['door']} {row['page']}"
        for row in results
        if "skipped" not in row and (row["p95_ms"] >= TARGET_P95_MS or row["status"] != 200)
    ]
    nproc = os.cpu_count()
    body = [
        f"Every list page of the three doors with the demo's data at scale (`manage.py demo "
        f"--scale`: 10,000 deposits, 1,000 release claims, 5,000 invoices and their payments "
        f"and credit notes, 3,000 notifications, over 50,000 audit entries) on PostgreSQL, "
        f"rendered {repeat} times each with Django's test client after two warm-up requests, "
        "DEBUG off, in one process (client and server). Signed in as the demo customer "
        "(Alice, Northwind Logistics), the notary and staff. Target: p95 under "
        f"{TARGET_P95_MS:.0f} ms for every page. Queries: those one request runs, session "
        "and user included. CPU: the CPU time of the process (client and Django, not the "
        "database server) per request, which a machine busy with other work inflates "
        "less than the wall time.",
        "",
        f"Command: `{command}`",
        "",
        *machine_summary(),
        f"- nproc: {nproc}; uname -a: `{' '.join(platform.uname())}`",
        "- Load average (1, 5, 15 min) before and after measuring: "
        + " and ".join(
            ", ".join(f"{value:.2f}" for value in load[key])
            for key in ("load_before", "load_after")
            if key in load
        ),
        "- Seeding: " + ", ".join(f"{step} {secs:.0f} s" for step, secs in seconds.items())
        if seconds
        else "- Seeding: the existing database was measured",
        "",
        *_table(results),
        "",
        (
            "Every page met the target."
            if not missed
            else "Pages that missed the target: " + "; ".join(missed) + "."
        ),
        *(
            [
                "",
                f"The machine was busy with other work (load average {busy:.1f} on {nproc} "
                "cores while measuring): the wall times include waiting for a core and for "
                "the database server, which shared them; the CPU column is the work of one "
                "request on this side. Rerun on an idle machine before judging a page by its "
                "p95.",
            ]
            if (
                busy := max(
                    (load.get("load_after") or (0.0,))[0], (load.get("load_before") or (0.0,))[0]
                )
            )
            > (nproc or 1)
            else []
        ),
    ]
    return Section(SECTION_ID, TITLE, "\n".join(body) + "\n")


def run(
    *,
    size: int = 0,
    workdir: Path,
    database_url: str = DEFAULT_DATABASE_URL,
    repeat: int = DEFAULT_REPEAT,
    scale: float = 1.0,
    keep: bool = False,
    reuse: bool = False,
    command: str = "",
) -> Section:
    """Seed (unless ``reuse``), measure in a child process, and return the section.
    ``size`` (bench.run's input size) means nothing here."""
    var_dir = workdir / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    try:
        if not reuse:
            seconds = seed(database_url, var_dir, scale=scale)
        env = _environment(database_url, var_dir, debug=False)
        child = subprocess.run(
            [sys.executable, "-m", "bench.list_pages", "--measure", "--repeat", str(repeat)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise SystemExit(f"measuring the pages failed:\n{child.stderr[-4000:]}")
        results = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        if not keep and not reuse:
            _recreate(database_url, drop_only=True)
    return section(
        results,
        seconds,
        repeat=repeat,
        command=command or ".venv/bin/python -m bench.list_pages",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.list_pages", description=__doc__)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="requests per page")
    parser.add_argument("--scale", type=float, default=1.0, help="the seeding's factor")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the database a --keep run left"
    )
    parser.add_argument(
        "--write", default=str(DEFAULT_DOCUMENT), help="document to update; '-' prints"
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.repeat < 1:
        parser.error("--repeat must be 1 or more")
    if options.measure:
        print(json.dumps(measure(options.repeat)))
        return
    command = " ".join([".venv/bin/python -m bench.list_pages", *(argv or sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="bench-lists-") as workdir:
        result = run(
            workdir=Path(workdir),
            database_url=options.database_url,
            repeat=options.repeat,
            scale=options.scale,
            keep=options.keep,
            reuse=options.reuse,
            command=command,
        )
    if options.write == "-":
        print(result.render())
    else:
        write_sections(Path(options.write), [result])
        print(f"wrote {options.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
