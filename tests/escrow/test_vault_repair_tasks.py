from __future__ import annotations

import os
from pathlib import Path

import pytest

from escrow.tasks import vault_reconcile_task, vault_scrub_task
from tests.deposits import deposit_through_pipeline


@pytest.fixture
def stored(product, staff, notary_identity, settings):
    deposit = deposit_through_pipeline(product=product, staff=staff)
    return deposit, Path(settings.ESCROW_SITES[1]["path"]) / deposit.object_key("sealed")


def test_the_scrub_task_heals_and_tells_staff(stored, settings, mailoutbox) -> None:
    settings.ADMINS = [("staff", "staff@acme.example")]
    deposit, replica_copy = stored
    os.chmod(replica_copy, 0o644)
    replica_copy.write_bytes(b"bit rot")
    assert vault_scrub_task() == {"healed": 1, "recorded": 0, "promoted": 0, "problems": 0}
    assert len(replica_copy.read_bytes()) == deposit.ciphertext_size
    assert "healed replica:" in mailoutbox[0].body
    assert vault_scrub_task() == {"healed": 0, "recorded": 0, "promoted": 0, "problems": 0}
    assert len(mailoutbox) == 1


def test_the_reconcile_task_restores_a_lost_copy(stored, mailoutbox) -> None:
    deposit, replica_copy = stored
    replica_copy.unlink()  # a lost disk; the vault itself never deletes
    assert vault_reconcile_task() == {"copied": 1, "recorded": 0, "promoted": 0, "problems": 0}
    assert replica_copy.stat().st_size == deposit.ciphertext_size
    assert mailoutbox == []
