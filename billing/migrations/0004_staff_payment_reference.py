"""A payment keeps the bank's reference, and the one-time key of the admin confirmation
that recorded it (the same confirmation submitted twice records one payment).

Adding these columns makes SQLite rebuild the table, which drops its immutability
trigger (from 0002), so it is created again afterwards; PostgreSQL keeps its trigger."""

from typing import Any

from django.db import migrations, models


def guard_payments_again(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS billing_payment_immutable", params=None)
    schema_editor.execute(
        """CREATE TRIGGER billing_payment_immutable BEFORE UPDATE ON billing_payment
        BEGIN SELECT RAISE(ABORT, 'billing_payment is immutable once issued: UPDATE refused'); END""",
        params=None,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_lifecycle_refunds"),
    ]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="confirmation",
            field=models.UUIDField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="payment",
            name="reference",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The bank's reference for the transfer.",
                max_length=140,
            ),
        ),
        migrations.RunPython(guard_payments_again, migrations.RunPython.noop),
    ]
