"""Deposits sealed before the transparency log existed join it, in deposit order, so
every sealed deposit has an inclusion proof. New deposits join it when sealed
(``escrow.services.deposits.deposit_seal``)."""

from __future__ import annotations

import hashlib

from django.db import migrations
from django.utils import timezone


def log_existing_deposits(apps, schema_editor):  # type: ignore[no-untyped-def]
    Deposit = apps.get_model("escrow", "Deposit")
    LogHead = apps.get_model("transparency", "LogHead")
    LogLeaf = apps.get_model("transparency", "LogLeaf")
    head, _ = LogHead.objects.get_or_create(id=1)
    known = set(LogLeaf.objects.values_list("deposit_id", "manifest_sha256"))
    now = timezone.now()
    leaves = []
    sealed = (
        Deposit.objects.exclude(manifest_sha256="")
        .exclude(state="rejected")
        .order_by("created_at", "pk")
        .values_list("pk", "manifest_sha256")
    )
    for deposit_id, manifest_sha256 in sealed.iterator():
        if (deposit_id, manifest_sha256) in known:
            continue
        known.add((deposit_id, manifest_sha256))
        leaves.append(
            LogLeaf(
                index=head.size + len(leaves),
                deposit_id=deposit_id,
                manifest_sha256=manifest_sha256,
                leaf_hash=hashlib.sha256(b"\x00" + bytes.fromhex(manifest_sha256)).hexdigest(),
                appended_at=now,
            )
        )
    LogLeaf.objects.bulk_create(leaves, batch_size=2000)
    head.size += len(leaves)
    head.save(update_fields=["size"])


class Migration(migrations.Migration):
    dependencies = [
        ("escrow", "0007_hybrid_recipients"),
        ("transparency", "0001_initial"),
    ]

    operations = [
        # Nothing to undo: the log is append-only, and its leaves outlive this migration.
        migrations.RunPython(log_existing_deposits, migrations.RunPython.noop, elidable=False),
    ]
