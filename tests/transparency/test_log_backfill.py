"""Deposits sealed before the log existed join it (migration escrow 0008), and a demo
seeded at scale puts its deposits in the log in bulk (``log_append_many``)."""

from __future__ import annotations

import hashlib
import importlib

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from escrow.models import Deposit
from tests.factories import make_deposit
from transparency.models import LogHead, LogLeaf
from transparency.services import inclusion_proof_for, log_append, log_append_many
from vault import merkle

pytestmark = pytest.mark.django_db

backfill = importlib.import_module("escrow.migrations.0008_log_existing_deposits")


def sealed_without_leaf(product, version: str, state: str = "stored") -> Deposit:  # type: ignore[no-untyped-def]
    deposit = make_deposit(product=product, version=version)
    digest = hashlib.sha256(f"manifest {version}".encode()).hexdigest()
    # As a deposit sealed by an earlier release looks: a manifest, no leaf.
    Deposit.objects.filter(pk=deposit.pk).update(state=state, manifest_sha256=digest)
    deposit.refresh_from_db()
    return deposit


def test_sealed_deposits_without_a_leaf_join_the_log_in_deposit_order(product) -> None:
    already = sealed_without_leaf(product, "0.9.0")
    log_append(deposit_id=already.pk, manifest_sha256=already.manifest_sha256)
    older = [sealed_without_leaf(product, f"1.{n}.0") for n in range(3)]
    rejected = make_deposit(product=product, version="2.0.0")
    Deposit.objects.filter(pk=rejected.pk).update(state="rejected")
    received = make_deposit(product=product, version="3.0.0")  # not sealed: no manifest

    backfill.log_existing_deposits(apps, None)

    leaves = list(LogLeaf.objects.order_by("index"))
    assert [leaf.deposit_id for leaf in leaves] == [already.pk] + [d.pk for d in older]
    assert [leaf.index for leaf in leaves] == [0, 1, 2, 3]
    assert LogHead.objects.get(id=1).size == 4
    assert leaves[1].leaf_hash == merkle.leaf_hash(bytes.fromhex(older[0].manifest_sha256)).hex()
    assert received.pk not in {leaf.deposit_id for leaf in leaves}
    proof = inclusion_proof_for(older[2].pk)
    assert proof is not None and proof.index == 3 and proof.tree_size == 4
    assert merkle.verify_inclusion(
        bytes.fromhex(proof.leaf_hash),
        proof.index,
        proof.tree_size,
        [bytes.fromhex(step) for step in proof.proof],
        bytes.fromhex(proof.root),
    )

    backfill.log_existing_deposits(apps, None)  # run twice: nothing more
    assert LogLeaf.objects.count() == 4


def test_many_appended_at_once_skip_those_already_in_the_log(product) -> None:
    first, second = (sealed_without_leaf(product, v) for v in ("1.0.0", "1.1.0"))
    log_append(deposit_id=first.pk, manifest_sha256=first.manifest_sha256)
    entries = [(d.pk, d.manifest_sha256) for d in (first, second)]
    assert log_append_many(entries) == 1
    assert log_append_many(entries) == 0
    assert list(LogLeaf.objects.values_list("index", "deposit_id")) == [
        (0, first.pk),
        (1, second.pk),
    ]


@pytest.mark.parametrize(
    "entry", [(0, "ab" * 32), (5, "AB" * 32), (5, "ab" * 31), (5, "not a hash")]
)
def test_many_refuses_anything_but_sealed_deposits_and_adds_nothing(product, entry) -> None:
    with pytest.raises(ValidationError, match="Not a sealed deposit"):
        log_append_many([(7, "cd" * 32), entry])
    assert LogLeaf.objects.count() == 0
