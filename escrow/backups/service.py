"""Backups of the database and the inventory of stored objects: made, verified,
pruned by the published retention, restored, and drilled.

A backup is one tar file, encrypted with age to the backup recipients:
``database.sqlite3`` or ``database.pgdump`` (pg_dump custom format),
``inventory.json`` (every stored object: site, key, version, SHA-256) and
``meta.json`` (when, which database, the row count of every table and the
audit chain's head, for the drill to compare against). Beside it, in the clear, an
audit anchor (records.services.audit): the same head, and the hash of every entry
since the last anchor, which the daily chain check compares the live chain with."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import mail_admins
from django.db import connection
from django.utils import timezone

from escrow.backups.retention import Keep, apply_policy
from escrow.backups.store import backup_delete, backup_site_config, backup_store
from escrow.models import Backup, BackupDrill, DepositCopy
from records.models import AuditChainHead, AuditEntry, StoredFile
from records.services.audit import (
    AnchorError,
    audit_anchor_write,
    audit_chain_check,
    audit_record,
)
from vault import age
from vault.keys import new_identity_file, write_key_once
from vault.site_clients import all_sites
from vault.sites import SiteError, hash_stream


class BackupError(Exception):
    """A backup, restore or drill could not be done; the message says why."""


def _backup_recipients() -> list[age.PublicRecipient]:
    """From ESCROW_BACKUP_RECIPIENTS, or a local key generated once under var/."""
    if settings.ESCROW_BACKUP_RECIPIENTS:
        try:
            return [age.parse_recipient(r) for r in settings.ESCROW_BACKUP_RECIPIENTS]
        except age.AgeError as error:
            raise BackupError(f"ESCROW_BACKUP_RECIPIENTS: {error}") from error
    path = settings.ESCROW_BACKUP_IDENTITY_PATH
    write_key_once(path, new_identity_file)
    return [age.parse_identity_file(path.read_text())[0].recipient()]


def _table_counts(cursor: Any, tables: list[str]) -> dict[str, int]:
    counts = {}
    for table in sorted(tables):
        cursor.execute(f'SELECT COUNT(*) FROM "{table}"')
        counts[table] = int(cursor.fetchone()[0])
    return counts


def _dump_database(folder: Path) -> tuple[Path, dict[str, Any]]:
    """Dump the database consistently; return the dump and what it holds."""
    vendor = connection.vendor
    tables = connection.introspection.table_names()
    head: dict[str, Any] = dict(
        AuditChainHead.objects.filter(id=1).values("sequence", "entry_hash").first() or {}
    )
    if vendor == "sqlite":
        target = folder / "database.sqlite3"
        connection.ensure_connection()
        # iterdump reads through the app's own connection, so the copy is consistent
        # with what this process sees, also inside a transaction (where the online
        # backup API would wait for a lock the same process holds).
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            for statement in connection.connection.iterdump():
                copy.execute(statement)
        finally:
            copy.close()
        with sqlite3.connect(target) as copy:
            counts = _table_counts(copy.cursor(), tables)
            head_row = copy.execute(
                "SELECT sequence, entry_hash FROM records_auditchainhead WHERE id = 1"
            ).fetchone()
        head = {"sequence": head_row[0], "entry_hash": head_row[1]} if head_row else head
    elif vendor == "postgresql":
        target = folder / "database.pgdump"
        counts, head = _pg_dump_consistently(target, tables)
    else:
        raise BackupError(f"No backup method for a {vendor} database.")
    return target, {"database": vendor, "tables": counts, "audit_head": head}


def _inventory() -> list[dict[str, Any]]:
    rows = [
        {
            "site": copy.site,
            "key": copy.key,
            "version": copy.version_id,
            "sha256": copy.sha256,
            "size": copy.size,
        }
        for copy in DepositCopy.objects.order_by("pk").iterator()
    ]
    sites = [site.name for site in all_sites()]
    rows += [
        {
            "site": name,
            "key": stored.key,
            "version": "",
            "sha256": stored.sha256,
            "size": stored.size,
        }
        for stored in StoredFile.objects.order_by("pk").iterator()
        for name in sites
    ]
    return rows


def _pg_connect(db: dict[str, Any], name: str | None = None, **options: Any) -> Any:
    import psycopg

    return psycopg.connect(
        host=db.get("HOST") or "localhost",
        port=db.get("PORT") or 5432,
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        dbname=name or db["NAME"],
        **options,
    )


def _pg_dump_consistently(target: Path, tables: list[str]) -> tuple[dict[str, int], dict[str, Any]]:
    """pg_dump and the row counts from one snapshot: a repeatable-read transaction
    exports its snapshot, counts, and pg_dump reads through the same snapshot."""
    db = connection.settings_dict
    with _pg_connect(db) as session:
        session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        snapshot = session.execute("SELECT pg_export_snapshot()").fetchone()[0]
        counts = _table_counts(session.cursor(), tables)
        row = session.execute(
            "SELECT sequence, entry_hash FROM records_auditchainhead WHERE id = 1"
        ).fetchone()
        command = [
            "pg_dump",
            "--format=custom",
            "--no-owner",
            f"--snapshot={snapshot}",
            "--file",
            str(target),
            "--host",
            db.get("HOST") or "localhost",
            "--port",
            str(db.get("PORT") or 5432),
            "--username",
            db.get("USER") or "postgres",
            db["NAME"],
        ]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env=os.environ | {"PGPASSWORD": db.get("PASSWORD") or ""},
        )
        session.rollback()
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()[:500]}")
    head = {"sequence": row[0], "entry_hash": row[1]} if row else {}
    return counts, head


def backup_run(*, now: datetime | None = None) -> Backup:
    """Make, upload, read back and record a backup; then apply retention. A failure
    is recorded with its reason, mailed to staff, and re-raised; nothing is pruned."""
    now = now or timezone.now()
    try:
        site = backup_site_config()
        recipients = _backup_recipients()
    except Exception as error:  # configuration: record and tell, like any failed backup
        return _failed(now, str(error))
    try:
        with tempfile.TemporaryDirectory(prefix="backup-") as tmp:
            folder = Path(tmp)
            dump, meta = _dump_database(folder)
            meta["created_at"] = now.isoformat()
            bundle = folder / "backup.tar"
            with tarfile.open(bundle, "w") as archive:
                archive.add(dump, arcname=dump.name)
                for name, content in (("inventory.json", _inventory()), ("meta.json", meta)):
                    data = json.dumps(content, indent=1, sort_keys=True).encode()
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
            sealed = folder / "backup.tar.age"
            with bundle.open("rb") as source, sealed.open("wb") as target:
                age.encrypt(source, target, recipients)
            bundle.unlink()
            with sealed.open("rb") as stream:
                sha256, size = hash_stream(stream)
                stream.seek(0)
                key = f"backups/{now:%Y/%m/%d}/backup-{now:%Y%m%dT%H%M%S%f}Z.tar.age"
                stored = backup_store().put(key, stream, sha256=sha256, size=size)
        # The chain head the dump holds, kept in the clear beside it (the backup itself
        # is encrypted): the daily chain check compares the live chain with it.
        if meta["audit_head"]:
            head = meta["audit_head"]
            audit_anchor_write(
                site=backup_store(),
                source=f"backup {key}",
                now=now,
                head=(head["sequence"], head["entry_hash"]),
            )
    except (BackupError, SiteError, OSError, age.AgeError, AnchorError) as error:
        raise BackupFailed(_failed(now, str(error)), error) from error
    backup = Backup.objects.create(
        created_at=now,
        state=Backup.State.OK,
        site=site["name"],
        key=key,
        version_id=stored.version_id or "",
        sha256=sha256,
        size=size,
        database=meta["database"],
    )
    audit_record(action="backup.made", target=backup, details={"key": key, "sha256": sha256})
    backup_prune()
    return backup


class BackupFailed(Exception):
    """A backup that failed: recorded (``backup``), mailed to staff, re-raised for retry."""

    def __init__(self, backup: Backup, error: Exception) -> None:
        super().__init__(str(error))
        self.backup = backup


def _failed(now: datetime, problem: str) -> Backup:
    backup = Backup.objects.create(created_at=now, state=Backup.State.FAILED, problem=problem)
    audit_record(action="backup.failed", target=backup, reason=problem)
    mail_admins("Backup failed", f"The backup of {now:%Y-%m-%d %H:%M} UTC failed:\n\n{problem}")
    return backup


def _backup_keep() -> Keep:
    return Keep(
        daily=settings.ESCROW_BACKUP_KEEP_DAILY,
        weekly=settings.ESCROW_BACKUP_KEEP_WEEKLY,
        monthly=settings.ESCROW_BACKUP_KEEP_MONTHLY,
        yearly=settings.ESCROW_BACKUP_KEEP_YEARLY,
    )


def backup_prune() -> list[Backup]:
    """Delete the backups the policy no longer keeps from the backup site. Never the
    newest successful one (the latest made, whatever its clock said), never a vault
    object, and never after a failed backup."""
    latest = Backup.objects.order_by("-pk").first()
    if latest is None or latest.state != Backup.State.OK:
        return []
    live = list(Backup.objects.filter(state=Backup.State.OK, pruned_at__isnull=True))
    kept = apply_policy([backup.created_at for backup in live], _backup_keep())
    pruned = []
    for backup in live:
        reasons = list(kept.get(backup.created_at, []))
        if backup.pk == latest.pk and "newest" not in reasons:
            reasons.append("newest")
        if reasons:
            if reasons != backup.kept_by:
                Backup.objects.filter(pk=backup.pk).update(kept_by=reasons)
            continue
        backup_delete(backup.key, backup.version_id)
        Backup.objects.filter(pk=backup.pk).update(pruned_at=timezone.now(), kept_by=[])
        audit_record(action="backup.pruned", target=backup, details={"key": backup.key})
        pruned.append(backup)
    return pruned


@dataclass
class Restored:
    folder: Path
    meta: dict[str, Any]
    inventory: list[dict[str, Any]]
    dump: Path


@contextmanager
def _opened(backup: Backup, identities: list[age.SecretIdentity]) -> Iterator[Restored]:
    """Fetch, check and decrypt a backup into a temporary folder."""
    if backup.state != Backup.State.OK or backup.pruned_at is not None:
        raise BackupError(
            f"Backup #{backup.pk} is not available ({backup.state}"
            f"{', pruned' if backup.pruned_at else ''})."
        )
    with tempfile.TemporaryDirectory(prefix="restore-") as tmp:
        folder = Path(tmp)
        sealed = folder / "backup.tar.age"
        digest = hashlib.sha256()
        try:
            with backup_store().open(backup.key) as source, sealed.open("wb") as target:
                while chunk := source.read(1024 * 1024):
                    digest.update(chunk)
                    target.write(chunk)
        except SiteError as error:
            raise BackupError(f"The backup site cannot be read: {error}") from error
        if digest.hexdigest() != backup.sha256:
            raise BackupError(
                f"Backup #{backup.pk} is damaged: its SHA-256 is {digest.hexdigest()}, "
                f"not {backup.sha256}. Nothing was restored."
            )
        bundle = folder / "backup.tar"
        try:
            with sealed.open("rb") as source, bundle.open("wb") as target:
                age.decrypt(source, target, identities)
        except age.NoIdentityMatchError:
            raise BackupError("The identity does not open this backup.") from None
        except age.AgeError as error:
            raise BackupError(f"The backup does not decrypt: {error}") from error
        with tarfile.open(bundle) as archive:
            names = archive.getnames()
            for name in names:
                if name not in {
                    "database.sqlite3",
                    "database.pgdump",
                    "meta.json",
                    "inventory.json",
                }:
                    raise BackupError(f"The backup holds an unexpected member {name!r}.")
            archive.extractall(folder, filter="data")
        dump = folder / ("database.sqlite3" if "database.sqlite3" in names else "database.pgdump")
        yield Restored(
            folder=folder,
            dump=dump,
            meta=json.loads((folder / "meta.json").read_text()),
            inventory=json.loads((folder / "inventory.json").read_text()),
        )


def _sqlite_is_empty(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    with sqlite3.connect(path) as target:
        return not target.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()


def _pg_args(url_settings: dict[str, Any]) -> list[str]:
    return [
        "--host",
        url_settings.get("HOST") or "localhost",
        "--port",
        str(url_settings.get("PORT") or 5432),
        "--username",
        url_settings.get("USER") or "postgres",
    ]


def _pg_is_empty(target: dict[str, Any]) -> bool:
    result = subprocess.run(
        [
            "psql",
            *_pg_args(target),
            "-d",
            target["NAME"],
            "-tAc",
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"PGPASSWORD": target.get("PASSWORD") or ""},
    )
    if result.returncode != 0:
        raise BackupError(f"Cannot inspect the target database: {result.stderr.strip()[:300]}")
    return result.stdout.strip() == "0"


def backup_restore(
    *, backup: Backup, identities: list[age.SecretIdentity], target: dict[str, Any]
) -> dict[str, Any]:
    """Restore a backup into an empty database (``target``: ENGINE/NAME/... like a
    Django DATABASES entry). Refuses a non-empty target; the live data is untouched."""
    engine = target["ENGINE"]
    if engine.endswith("sqlite3") and not _sqlite_is_empty(Path(target["NAME"])):
        raise BackupError(f"The target database {target['NAME']} is not empty; nothing restored.")
    if engine.endswith("postgresql") and not _pg_is_empty(target):
        raise BackupError(f"The target database {target['NAME']} is not empty; nothing restored.")
    with _opened(backup, identities) as restored:
        if restored.dump.name == "database.sqlite3":
            if not engine.endswith("sqlite3"):
                raise BackupError("This backup is of a SQLite database; restore it into SQLite.")
            shutil.copyfile(restored.dump, target["NAME"])
        else:
            if not engine.endswith("postgresql"):
                raise BackupError("This backup is of PostgreSQL; restore it into PostgreSQL.")
            result = subprocess.run(
                [
                    "pg_restore",
                    "--no-owner",
                    *_pg_args(target),
                    "-d",
                    target["NAME"],
                    str(restored.dump),
                ],
                capture_output=True,
                text=True,
                check=False,
                env=os.environ | {"PGPASSWORD": target.get("PASSWORD") or ""},
            )
            if result.returncode != 0:
                raise BackupError(f"pg_restore failed: {result.stderr.strip()[:500]}")
        return restored.meta


def backup_identities(identity_file: Path | None = None) -> list[age.SecretIdentity]:
    """The key that opens backups: a file given by the operator, or the local one."""
    path = identity_file or settings.ESCROW_BACKUP_IDENTITY_PATH
    try:
        return age.parse_identity_file(Path(path).read_text())
    except OSError as error:
        raise BackupError(f"Cannot read the backup identity {path}: {error.strerror}") from error
    except age.AgeError as error:
        raise BackupError(f"{path} is not an age identity file: {error}") from error


def backup_drill(*, identity_file: Path | None = None) -> BackupDrill:
    """Restore the newest backup into a scratch database and compare it with what was
    backed up: the row count of every table and the audit chain (intact, ending where
    the backup's did, and the start of the live chain)."""
    backup = (
        Backup.objects.filter(state=Backup.State.OK, pruned_at__isnull=True)
        .order_by("-created_at", "-pk")
        .first()
    )
    if backup is None:
        raise BackupError("There is no backup to drill.")
    problems: list[str] = []
    report: dict[str, Any] = {"backup": backup.pk}
    with _scratch_database(backup.database) as (target, connect):
        try:
            meta = backup_restore(
                backup=backup, identities=backup_identities(identity_file), target=target
            )
        except BackupError as error:
            drill = BackupDrill.objects.create(
                backup=backup, ok=False, problem=str(error), report=report
            )
            audit_record(action="backup.drill_failed", target=drill, reason=str(error))
            mail_admins("Backup drill failed", str(error))
            return drill
        scratch = connect()
        try:
            restored_counts = _table_counts(scratch.cursor(), list(meta["tables"]))
            chain, restored_hashes = _restored_chain(scratch)
        finally:
            scratch.close()
    report["tables"] = len(restored_counts)
    report["rows"] = sum(restored_counts.values())
    for table, count in meta["tables"].items():
        if restored_counts.get(table) != count:
            problems.append(f"{table}: {restored_counts.get(table)} rows, backed up {count}")
    report["audit_entries"] = chain.checked
    if not chain.intact:
        problems.append(f"restored audit chain: {chain.problem}")
    head = meta.get("audit_head") or {}
    if head.get("sequence"):
        if chain.checked != head["sequence"]:
            problems.append(
                f"restored chain ends at #{chain.checked}, backup at #{head['sequence']}"
            )
        live = (
            AuditEntry.objects.filter(sequence=head["sequence"])
            .values_list("entry_hash", flat=True)
            .first()
        )
        if live != head.get("entry_hash"):
            problems.append(_live_chain_rewritten(restored_hashes, head["sequence"]))
    drill = BackupDrill.objects.create(
        backup=backup, ok=not problems, report=report, problem="; ".join(problems)
    )
    audit_record(action="backup.drill", target=drill, details=report, reason=drill.problem)
    if problems:
        mail_admins("Backup drill failed", "\n".join(problems))
    return drill


_AUDIT_COLUMNS = (
    "sequence",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "from_state",
    "to_state",
    "reason",
    "details",
    "previous_hash",
    "entry_hash",
)


def _live_chain_rewritten(restored: dict[int, str], head_sequence: int) -> str:
    """Where the live chain stopped matching the backed-up one: the first entry whose
    hash differs (or that is gone), as the backup still holds every entry."""
    live = dict(
        AuditEntry.objects.filter(sequence__lte=head_sequence).values_list("sequence", "entry_hash")
    )
    for sequence in range(1, head_sequence + 1):
        if live.get(sequence) != restored.get(sequence):
            now = "is missing" if sequence not in live else "has another hash"
            return (
                f"the live audit chain was rewritten from entry #{sequence}: the backup "
                f"holds it with hash {str(restored.get(sequence))[:12]}…, the live entry {now}"
            )
    return f"the live audit chain differs at entry #{head_sequence}"


def _restored_chain(scratch: Any) -> tuple[Any, dict[int, str]]:
    """Check the audit chain of a restored database, read with plain SQL; also return
    each restored entry's hash, to find where the live chain departs from it."""
    cursor = scratch.cursor()
    cursor.execute(f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM records_auditentry ORDER BY sequence")
    rows = [dict(zip(_AUDIT_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    hashes: dict[int, str] = {fields["sequence"]: fields["entry_hash"] for fields in rows}

    def entries() -> Iterator[AuditEntry]:
        for fields in rows:
            created = fields["created_at"]
            if isinstance(created, str):  # SQLite keeps UTC text without a zone
                created = datetime.fromisoformat(created).replace(tzinfo=UTC)
            fields["created_at"] = created.astimezone(UTC)
            if isinstance(fields["details"], str):
                fields["details"] = json.loads(fields["details"])
            yield AuditEntry(**fields)

    head_cursor = scratch.cursor()
    head_cursor.execute("SELECT sequence, entry_hash FROM records_auditchainhead WHERE id = 1")
    head = head_cursor.fetchone() or (0, "")
    report = audit_chain_check(entries(), head_sequence=head[0], head_hash=head[1])
    return report, hashes


@contextmanager
def _scratch_database(vendor: str) -> Iterator[tuple[dict[str, Any], Any]]:
    """A new, empty database for the drill and a way to open it, removed afterwards."""
    live = connection.settings_dict
    if vendor == "sqlite":
        with tempfile.TemporaryDirectory(prefix="drill-") as tmp:
            path = str(Path(tmp) / "drill.sqlite3")
            yield (
                {"ENGINE": "django.db.backends.sqlite3", "NAME": path},
                (lambda: sqlite3.connect(path)),
            )
        return
    name = f"escrow_drill_{os.getpid()}_{int(timezone.now().timestamp())}"
    target = {**live, "NAME": name}
    # CREATE DATABASE cannot run in a transaction: a separate autocommit session.
    with _pg_connect(live, "postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield target, lambda: _pg_connect(live, name)
    finally:
        with _pg_connect(live, "postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
