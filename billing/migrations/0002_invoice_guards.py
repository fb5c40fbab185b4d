"""Issued invoices, their lines and payments are never edited or deleted.

PostgreSQL refuses UPDATE and DELETE with a trigger; SQLite (the local default)
refuses UPDATE and keeps DELETE open for Django's test flush, as for the audit log."""

from __future__ import annotations

from typing import Any

from django.db import migrations

TABLES = ["billing_invoice", "billing_invoiceline", "billing_payment"]


def _postgres(table: str) -> list[str]:
    return [
        f"""CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION escrow_billing_immutable()""",
    ]


def guard(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            """CREATE OR REPLACE FUNCTION escrow_billing_immutable() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION '% is immutable once issued: % refused', TG_TABLE_NAME, TG_OP;
            END;
            $$ LANGUAGE plpgsql""",
            params=None,
        )
        for table in TABLES:
            for statement in _postgres(table):
                schema_editor.execute(statement, params=None)
    elif vendor == "sqlite":
        for table in TABLES:
            schema_editor.execute(
                f"""CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table}
                BEGIN SELECT RAISE(ABORT, '{table} is immutable once issued: UPDATE refused'); END""",
                params=None,
            )
    else:
        raise RuntimeError(f"No immutability guard for {vendor}.")


def unguard(apps: Any, schema_editor: Any) -> None:
    for table in TABLES:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}", params=None)
        else:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable", params=None)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS escrow_billing_immutable()", params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(guard, unguard)]
