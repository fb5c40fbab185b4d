"""The transparency log's tables, its head row, and the database's own append-only guard.

PostgreSQL refuses UPDATE and DELETE on leaves, checkpoints and witness signatures with a
trigger. SQLite (the local default) refuses UPDATE; it keeps DELETE open because Django
empties tables with DELETE between transactional tests there. A removed or altered leaf
still changes every later root, which the checkpoints already published and the notaries'
co-signatures expose."""

from typing import Any

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


GUARDED = ["transparency_logleaf", "transparency_checkpoint", "transparency_witnesssignature"]

POSTGRES_UP = [
    """CREATE OR REPLACE FUNCTION transparency_append_only() RETURNS trigger AS $$
    BEGIN
      RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
    END;
    $$ LANGUAGE plpgsql""",
    *(
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION transparency_append_only()"""
        for table in GUARDED
    ),
]
POSTGRES_DOWN = [
    *(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in GUARDED),
    "DROP FUNCTION IF EXISTS transparency_append_only()",
]
SQLITE_UP = [
    f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table}
    BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END"""
    for table in GUARDED
]
SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {table}_append_only" for table in GUARDED]


def _run(schema_editor: Any, sql_by_vendor: dict[str, list[str]]) -> None:
    statements = sql_by_vendor.get(schema_editor.connection.vendor)
    if statements is None:
        raise RuntimeError(f"No append-only guard for {schema_editor.connection.vendor}.")
    for statement in statements:
        # params=None: the SQL holds a literal % that must not be read as a placeholder.
        schema_editor.execute(statement, params=None)


def guard(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP})
    apps.get_model("transparency", "LogHead").objects.get_or_create(id=1)


def unguard(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN})


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Checkpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('size', models.PositiveBigIntegerField(unique=True)),
                ('root', models.CharField(max_length=64, validators=[django.core.validators.RegexValidator('^[0-9a-f]{64}$', 'A SHA-256 is 64 lower-case hex digits.')])),
                ('note', models.TextField(help_text='The C2SP signed note.')),
                ('sshsig', models.TextField(help_text='SSHSIG of the note body, checkpoint namespace.')),
                ('created_at', models.DateTimeField()),
            ],
            options={
                'ordering': ['-size'],
            },
        ),
        migrations.CreateModel(
            name='LogHead',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ('size', models.PositiveBigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='LogLeaf',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('index', models.PositiveBigIntegerField(help_text='0-based, gap-free.', unique=True)),
                ('deposit_id', models.PositiveBigIntegerField(help_text='The escrow deposit (escrow sits above this app, so no foreign key).')),
                ('manifest_sha256', models.CharField(max_length=64, validators=[django.core.validators.RegexValidator('^[0-9a-f]{64}$', 'A SHA-256 is 64 lower-case hex digits.')])),
                ('leaf_hash', models.CharField(help_text='SHA-256(0x00 || manifest hash).', max_length=64, validators=[django.core.validators.RegexValidator('^[0-9a-f]{64}$', 'A SHA-256 is 64 lower-case hex digits.')])),
                ('appended_at', models.DateTimeField()),
            ],
            options={
                'ordering': ['index'],
                'constraints': [models.UniqueConstraint(fields=('deposit_id', 'manifest_sha256'), name='one_leaf_per_deposit_manifest')],
            },
        ),
        migrations.CreateModel(
            name='WitnessKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_key', models.CharField(help_text="The 'ssh-ed25519 AAAA...' line.", max_length=200)),
                ('fingerprint', models.CharField(help_text='SHA256:... as ssh-keygen -l shows.', max_length=100)),
                ('added_at', models.DateTimeField()),
                ('retired_at', models.DateTimeField(blank=True, null=True)),
                ('notary', models.ForeignKey(limit_choices_to={'role': 'notary'}, on_delete=django.db.models.deletion.PROTECT, related_name='witness_keys', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['notary', '-added_at'],
            },
        ),
        migrations.CreateModel(
            name='WitnessSignature',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('signature', models.TextField(help_text='SSHSIG, armored, witness namespace.')),
                ('signed_at', models.DateTimeField()),
                ('key', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='signatures', to='transparency.witnesskey')),
                ('notary', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='witness_signatures', to=settings.AUTH_USER_MODEL)),
                ('signed_checkpoint', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='witness_signatures', to='transparency.checkpoint')),
            ],
            options={
                'ordering': ['signed_checkpoint__size', 'signed_at'],
            },
        ),
        migrations.AddConstraint(
            model_name='witnesskey',
            constraint=models.UniqueConstraint(condition=models.Q(('retired_at__isnull', True)), fields=('notary',), name='one_active_witness_key_per_notary'),
        ),
        migrations.AddConstraint(
            model_name='witnesssignature',
            constraint=models.UniqueConstraint(fields=('signed_checkpoint', 'key'), name='one_witness_signature_per_key'),
        ),
        migrations.RunPython(guard, unguard),
    ]
