"""Many sealings at once never fork the log nor leave a gap (PostgreSQL: SQLite lets
one writer in at a time anyway)."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection, connections, transaction

from tests.conftest import skip_or_fail
from transparency.models import LogLeaf
from transparency.services import checkpoint_latest, consistency_proof_between, log_append
from vault import merkle

WRITERS = 8
APPENDS_EACH = 15


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_take_every_index_once() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("concurrent log appends are tested against PostgreSQL (set DATABASE_URL)")
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []
    checkpoints: list[tuple[int, str]] = []

    def writer(number: int) -> None:
        try:
            start.wait()
            for step in range(APPENDS_EACH):
                deposit_id = 1 + number * APPENDS_EACH + step
                digest = hashlib.sha256(f"{deposit_id}".encode()).hexdigest()
                # Like deposit_seal: the append inside a longer transaction, which keeps
                # the head locked until it commits.
                with transaction.atomic():
                    log_append(deposit_id=deposit_id, manifest_sha256=digest)
                    # The same deposit again (a retried seal) adds nothing.
                    log_append(deposit_id=deposit_id, manifest_sha256=digest)
                if step % 5 == 4:
                    checkpoint = checkpoint_latest()
                    assert checkpoint is not None
                    checkpoints.append((checkpoint.size, checkpoint.root))
        except BaseException as error:  # reported to the main thread below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    total = WRITERS * APPENDS_EACH
    leaves = list(LogLeaf.objects.order_by("index").values_list("index", "deposit_id"))
    assert [index for index, _ in leaves] == list(range(total))  # no gap, no fork
    assert sorted(deposit_id for _, deposit_id in leaves) == list(range(1, total + 1))
    # Every checkpoint taken while others appended is a prefix of the final tree.
    final = checkpoint_latest()
    assert final is not None and final.size == total
    for size, root in checkpoints:
        proof = [bytes.fromhex(node) for node in consistency_proof_between(size, total)]
        assert merkle.verify_consistency(
            size, total, bytes.fromhex(root), bytes.fromhex(final.root), proof
        )
