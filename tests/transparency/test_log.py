"""The transparency log: appends in sealing order, idempotent, signed checkpoints, and
proofs that the pure RFC 6962 verifier (vault.merkle) accepts against them."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import Client

from escrow.models import Deposit
from escrow.services.tokens import token_create
from tests import archives
from tests.factories import make_deposit
from transparency import services
from transparency.models import Checkpoint, LogLeaf
from transparency.services import (
    LogError,
    checkpoint_at,
    checkpoint_latest,
    consistency_proof_between,
    inclusion_proof_for,
    log_append,
    log_size,
    root_at,
)
from vault import merkle, signed_note, sshsig
from vault.keys import system_signing_key

pytestmark = pytest.mark.django_db


def manifest_hash(n: int) -> str:
    return hashlib.sha256(f"manifest {n}".encode()).hexdigest()


def fill(count: int, *, first_deposit: int = 1) -> list[LogLeaf]:
    return [
        log_append(deposit_id=first_deposit + n, manifest_sha256=manifest_hash(n))
        for n in range(count)
    ]


def test_leaves_take_the_next_index_in_order_and_hash_the_manifest_hash() -> None:
    leaves = fill(5)
    assert [leaf.index for leaf in leaves] == [0, 1, 2, 3, 4]
    assert [leaf.deposit_id for leaf in leaves] == [1, 2, 3, 4, 5]
    expected = hashlib.sha256(b"\x00" + bytes.fromhex(manifest_hash(3))).hexdigest()
    assert leaves[3].leaf_hash == expected
    assert log_size() == 5


def test_appending_the_same_deposit_and_manifest_again_adds_nothing() -> None:
    first = log_append(deposit_id=7, manifest_sha256=manifest_hash(0))
    again = log_append(deposit_id=7, manifest_sha256=manifest_hash(0))
    assert again.pk == first.pk
    assert LogLeaf.objects.count() == 1


def test_a_deposit_sealed_again_with_a_new_manifest_gets_a_second_leaf() -> None:
    """A re-upload after a lost sealed file makes a new manifest: the log keeps both, and
    the deposit's proof is for the newest."""
    fill(2)
    resealed = log_append(deposit_id=1, manifest_sha256=manifest_hash(99))
    assert resealed.index == 2
    proof = inclusion_proof_for(1)
    assert proof is not None and proof.index == 2 and proof.leaf_hash == resealed.leaf_hash


@pytest.mark.parametrize(
    ("deposit_id", "manifest_sha256", "problem"),
    [
        (1, "A" * 64, "64 lower-case hex digits"),
        (1, "a" * 63, "64 lower-case hex digits"),
        (1, "", "64 lower-case hex digits"),
        (1, "g" * 64, "64 lower-case hex digits"),
        (0, "a" * 64, "is not a deposit id"),
        (-3, "a" * 64, "is not a deposit id"),
    ],
)
def test_a_malformed_append_is_refused(deposit_id, manifest_sha256, problem) -> None:
    with pytest.raises(ValidationError, match=problem):
        log_append(deposit_id=deposit_id, manifest_sha256=manifest_sha256)
    assert LogLeaf.objects.count() == 0


def test_an_empty_log_has_no_checkpoint_and_no_proof() -> None:
    assert checkpoint_latest() is None
    assert inclusion_proof_for(1) is None


def test_the_checkpoint_is_a_signed_note_and_an_sshsig_over_its_body() -> None:
    leaves = fill(3)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    key = system_signing_key()
    origin = signed_note.log_origin()
    body = signed_note.verify_note(checkpoint.note, origin, key.public_key())
    assert body == checkpoint.body
    root = merkle.root([bytes.fromhex(leaf.leaf_hash) for leaf in leaves])
    assert signed_note.parse_checkpoint(body) == (origin, 3, root)
    assert checkpoint.root == root.hex()
    namespace = sshsig.namespace("checkpoint")
    sshsig.verify(body.encode(), checkpoint.sshsig, key.public_key(), namespace)
    with pytest.raises(sshsig.SshSigError):
        sshsig.verify(
            body.replace("\n3\n", "\n4\n").encode(),
            checkpoint.sshsig,
            key.public_key(),
            sshsig.namespace("checkpoint"),
        )


def test_a_checkpoint_is_stored_once_per_size() -> None:
    fill(2)
    first = checkpoint_latest()
    assert checkpoint_latest() == first
    assert Checkpoint.objects.count() == 1
    fill(1, first_deposit=10)
    second = checkpoint_latest()
    assert second is not None and first is not None
    assert (second.size, Checkpoint.objects.count()) == (3, 2)
    assert checkpoint_at(2) == first


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_every_inclusion_proof_verifies_against_its_checkpoint(size: int) -> None:
    fill(size)
    for deposit_id in range(1, size + 1):
        proof = inclusion_proof_for(deposit_id)
        assert proof is not None
        assert proof.tree_size == size and proof.index == deposit_id - 1
        body = signed_note.verify_note(
            proof.checkpoint, signed_note.log_origin(), system_signing_key().public_key()
        )
        _, _, root = signed_note.parse_checkpoint(body)
        assert root.hex() == proof.root
        assert merkle.verify_inclusion(
            bytes.fromhex(proof.leaf_hash),
            proof.index,
            proof.tree_size,
            [bytes.fromhex(node) for node in proof.proof],
            root,
        )
        as_json = proof.as_dict()
        assert as_json["leaf_hash"] == proof.leaf_hash and as_json["proof"] == proof.proof


def test_a_proof_against_an_older_checkpoint_stays_valid() -> None:
    fill(3)
    old = checkpoint_latest()
    assert old is not None
    fill(4, first_deposit=10)
    proof = inclusion_proof_for(2, checkpoint=old)
    assert proof is not None and proof.tree_size == 3
    assert merkle.verify_inclusion(
        bytes.fromhex(proof.leaf_hash),
        proof.index,
        3,
        [bytes.fromhex(node) for node in proof.proof],
        bytes.fromhex(old.root),
    )
    # A deposit appended after the checkpoint is not in it.
    assert inclusion_proof_for(10, checkpoint=old) is None


def test_consistency_proofs_link_every_pair_of_checkpoints() -> None:
    checkpoints = []
    for n in range(1, 10):
        fill(1, first_deposit=n)
        checkpoint = checkpoint_latest()
        assert checkpoint is not None
        checkpoints.append(checkpoint)
    for old in checkpoints:
        for new in checkpoints:
            if old.size > new.size:
                continue
            proof = [bytes.fromhex(n) for n in consistency_proof_between(old.size, new.size)]
            assert merkle.verify_consistency(
                old.size, new.size, bytes.fromhex(old.root), bytes.fromhex(new.root), proof
            )
    assert root_at(4) == checkpoints[3].root


def test_a_rewritten_leaf_breaks_the_published_checkpoint() -> None:
    """What the witnesses catch: an operator who swaps a manifest hash in the database
    (here past the guard, as a raw rewrite would be) gets a different root, so no
    consistency proof links it to the checkpoint already published."""
    fill(4)
    published = checkpoint_latest()
    assert published is not None
    rebuilt = [bytes.fromhex(leaf.leaf_hash) for leaf in LogLeaf.objects.order_by("index")]
    rebuilt[1] = merkle.leaf_hash(bytes.fromhex(manifest_hash(42)))
    assert merkle.root(rebuilt).hex() != published.root
    # Removal: a log rebuilt without deposit 2 and grown by two leaves cannot prove it
    # extends what the witnesses saw, whatever proof its operator computes from it.
    forked = [*rebuilt[:1], *rebuilt[2:], merkle.leaf_hash(b"x" * 32), merkle.leaf_hash(b"y" * 32)]
    proof = merkle.consistency_proof(4, forked)
    assert not merkle.verify_consistency(
        4, 5, bytes.fromhex(published.root), merkle.root(forked), proof
    )
    # The honest log, grown the same way, proves it.
    fill(1, first_deposit=50)
    honest = [bytes.fromhex(n) for n in consistency_proof_between(4, 5)]
    assert merkle.verify_consistency(
        4, 5, bytes.fromhex(published.root), bytes.fromhex(root_at(5)), honest
    )


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (0, 2, "at least 1"),
        (-1, 2, "at least 1"),
        (3, 2, "larger than new size"),
        (1, 9, "larger than the log"),
    ],
)
def test_consistency_between_sizes_that_do_not_fit_is_refused(old, new, problem) -> None:
    fill(3)
    with pytest.raises(LogError, match=problem):
        consistency_proof_between(old, new)


def test_the_database_refuses_to_rewrite_a_leaf() -> None:
    fill(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LogLeaf.objects.filter(index=0).update(manifest_sha256=manifest_hash(9))
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Checkpoint.objects.filter(pk=checkpoint.pk).update(root="0" * 64)


def test_sealing_a_deposit_appends_it_in_the_same_transaction(product) -> None:
    from escrow.services.deposits import deposit_seal, deposit_verify

    deposit = make_deposit(product=product)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="c" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    leaf = LogLeaf.objects.get(deposit_id=deposit.pk)
    assert leaf.manifest_sha256 == "c" * 64 and leaf.index == 0


def test_a_deposit_sealed_through_the_deposit_api_is_in_the_log(
    product, staff, notary_identity, django_capture_on_commit_callbacks
) -> None:
    issued = token_create(product=product, label="CI", actor=staff)
    body = archives.tar_gz()
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().put(
            f"/api/v1/products/{product.slug}/deposits/1.0.0",
            data=io.BytesIO(body).getvalue(),
            content_type="application/octet-stream",
            HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
            HTTP_X_ARCHIVE_SHA256=archives.sha256(body),
        )
    assert response.status_code in (200, 201, 202), response.content
    deposit = Deposit.objects.get(product=product, version="1.0.0")
    assert deposit.state == "replicated"
    leaf = LogLeaf.objects.get(deposit_id=deposit.pk)
    assert leaf.manifest_sha256 == deposit.manifest_sha256
    proof = inclusion_proof_for(deposit.pk)
    assert proof is not None and proof.tree_size == 1
    assert proof.leaf_hash == merkle.leaf_hash(bytes.fromhex(deposit.manifest_sha256)).hex()
    assert proof.root == proof.leaf_hash  # a tree of one leaf is its leaf


def test_a_leaf_altered_under_a_published_checkpoint_stops_every_proof() -> None:
    """Past the database's guard (dropped here, inside the test's transaction), a
    rewritten leaf no longer hashes to the signed root: no proof is given."""
    fill(3)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    guard = "transparency_logleaf_append_only"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER {guard} ON transparency_logleaf")
        else:
            cursor.execute(f"DROP TRIGGER {guard}")
    LogLeaf.objects.filter(index=1).update(leaf_hash=merkle.leaf_hash(b"forged").hex())
    # A process that read the tree before keeps serving its (correct) proofs; a fresh
    # one reads the altered leaves and refuses.
    services._tree.cache_clear()
    with pytest.raises(LogError, match=r"no longer hash to the root .* the log was altered"):
        inclusion_proof_for(1, checkpoint=checkpoint)
    response = Client().get("/api/v1/log/proof/inclusion", {"deposit": 1})
    assert response.status_code == 500
    assert "the log was altered" in response.json()["error"]
