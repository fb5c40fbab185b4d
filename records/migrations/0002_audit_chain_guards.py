"""Seed the audit chain head and make the audit table append-only in the database.

PostgreSQL refuses UPDATE and DELETE on audit rows with a trigger. SQLite (the
local default) refuses UPDATE; it keeps DELETE open because Django empties
tables with DELETE between transactional tests there. On both, a removed or
altered row still breaks the hash chain, which `audit_verify` reports."""

from __future__ import annotations

from typing import Any

from django.db import migrations

POSTGRES_UP = [
    """CREATE OR REPLACE FUNCTION records_audit_append_only() RETURNS trigger AS $$
    BEGIN
      RAISE EXCEPTION 'records_auditentry is append-only: % refused', TG_OP;
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER records_auditentry_append_only
      BEFORE UPDATE OR DELETE ON records_auditentry
      FOR EACH ROW EXECUTE FUNCTION records_audit_append_only()""",
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS records_auditentry_append_only ON records_auditentry",
    "DROP FUNCTION IF EXISTS records_audit_append_only()",
]
SQLITE_UP = [
    """CREATE TRIGGER records_auditentry_append_only BEFORE UPDATE ON records_auditentry
    BEGIN SELECT RAISE(ABORT, 'records_auditentry is append-only: UPDATE refused'); END""",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS records_auditentry_append_only"]


def _run(schema_editor: Any, sql_by_vendor: dict[str, list[str]]) -> None:
    statements = sql_by_vendor.get(schema_editor.connection.vendor)
    if statements is None:
        raise RuntimeError(f"No append-only guard for {schema_editor.connection.vendor}.")
    for statement in statements:
        # params=None: the SQL holds a literal % that must not be read as a placeholder.
        schema_editor.execute(statement, params=None)


def guard(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP})
    apps.get_model("records", "AuditChainHead").objects.get_or_create(id=1)


def unguard(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN})


class Migration(migrations.Migration):
    dependencies = [("records", "0001_initial")]
    operations = [migrations.RunPython(guard, unguard)]
