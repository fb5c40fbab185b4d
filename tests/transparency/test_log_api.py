"""The log's public endpoints: the checkpoint, inclusion and consistency proofs, and
every hostile parameter answered with a clear 400 or 404."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from escrow.services.deposits import deposit_seal, deposit_verify
from tests.factories import make_deposit
from transparency.services import log_append
from vault import merkle, signed_note, sshsig
from vault.keys import system_signing_key

pytestmark = pytest.mark.django_db

CHECKPOINT = "/api/v1/log/checkpoint"
INCLUSION = "/api/v1/log/proof/inclusion"
CONSISTENCY = "/api/v1/log/proof/consistency"


def sealed(product, version: str, manifest: str):
    deposit = make_deposit(product=product, version=version)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256=manifest, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    return deposit


@pytest.fixture
def three(product):
    return [sealed(product, f"1.0.{n}", hashlib.sha256(bytes([n])).hexdigest()) for n in range(3)]


def test_the_checkpoint_is_the_signed_note_as_text(three) -> None:
    response = Client().get(CHECKPOINT)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    note = response.content.decode()
    origin = signed_note.log_origin()
    body = signed_note.verify_note(note, origin, system_signing_key().public_key())
    assert signed_note.parse_checkpoint(body)[:2] == (origin, 3)


def test_the_checkpoint_as_json_carries_its_sshsig_and_verifier_key(three) -> None:
    data = Client().get(CHECKPOINT, {"format": "json"}).json()
    assert data["size"] == 3
    body = data["note"][: data["note"].rfind("\n\n") + 1]
    sshsig.verify(
        body.encode(),
        data["sshsig"],
        system_signing_key().public_key(),
        sshsig.namespace("checkpoint"),
    )
    name, key = signed_note.parse_verifier_key(data["verifier_key"])
    assert signed_note.verify_note(data["note"], name, key) == body


def test_an_empty_log_has_no_checkpoint_yet(db) -> None:
    response = Client().get(CHECKPOINT)
    assert response.status_code == 404
    assert "empty" in response.json()["error"]


def test_an_unknown_format_is_refused(three) -> None:
    response = Client().get(CHECKPOINT, {"format": "xml"})
    assert response.status_code == 400
    assert "'format' is 'text' or 'json'" in response.json()["error"]


def test_the_inclusion_proof_of_a_deposit_verifies(three) -> None:
    data = Client().get(INCLUSION, {"deposit": three[1].pk}).json()
    assert (data["index"], data["tree_size"]) == (1, 3)
    assert data["leaf_hash"] == merkle.leaf_hash(bytes.fromhex(three[1].manifest_sha256)).hex()
    body = signed_note.verify_note(
        data["checkpoint"], signed_note.log_origin(), system_signing_key().public_key()
    )
    _, size, root = signed_note.parse_checkpoint(body)
    assert merkle.verify_inclusion(
        bytes.fromhex(data["leaf_hash"]),
        data["index"],
        size,
        [bytes.fromhex(node) for node in data["proof"]],
        root,
    )


def test_the_consistency_proof_links_two_sizes(three, product) -> None:
    old_checkpoint = Client().get(CHECKPOINT, {"format": "json"}).json()
    sealed(product, "2.0.0", "d" * 64)
    data = Client().get(CONSISTENCY, {"old": 3, "new": 4}).json()
    assert data["old_root"] == old_checkpoint["root"]
    assert data["old_checkpoint"] == old_checkpoint["note"]
    assert data["new_checkpoint"] is None  # nobody asked for the checkpoint at 4 yet
    assert merkle.verify_consistency(
        3,
        4,
        bytes.fromhex(data["old_root"]),
        bytes.fromhex(data["new_root"]),
        [bytes.fromhex(node) for node in data["proof"]],
    )


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({}, "'deposit' is required"),
        ({"deposit": ""}, "'deposit' is required"),
        ({"deposit": "abc"}, "'deposit' must be a positive whole number, not 'abc'"),
        ({"deposit": "-1"}, "'deposit' must be a positive whole number, not '-1'"),
        ({"deposit": "0"}, "'deposit' must be a positive whole number, not '0'"),
        ({"deposit": "1.5"}, "'deposit' must be a positive whole number"),
        ({"deposit": "٣"}, "'deposit' must be a positive whole number"),
        ({"deposit": "9" * 30}, "'deposit' must be a positive whole number"),
    ],
)
def test_a_malformed_deposit_parameter_is_a_bad_request(three, query, problem) -> None:
    response = Client().get(INCLUSION, query)
    assert response.status_code == 400
    assert problem in response.json()["error"]


def test_an_unknown_deposit_is_not_found(three) -> None:
    response = Client().get(INCLUSION, {"deposit": 99999})
    assert response.status_code == 404
    assert response.json()["error"] == "There is no deposit 99999."


def test_a_deposit_not_sealed_yet_is_not_in_the_log(three, product) -> None:
    waiting = make_deposit(product=product, version="3.0.0")
    response = Client().get(INCLUSION, {"deposit": waiting.pk})
    assert response.status_code == 404
    assert "is not in the log: it has not been sealed" in response.json()["error"]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"new": "3"}, "'old' is required"),
        ({"old": "1"}, "'new' is required"),
        ({"old": "x", "new": "3"}, "'old' must be a positive whole number"),
        ({"old": "-2", "new": "3"}, "'old' must be a positive whole number"),
        ({"old": "0", "new": "3"}, "'old' must be a positive whole number"),
        ({"old": "3", "new": "2"}, "old size 3 is larger than new size 2"),
        ({"old": "1", "new": "4"}, "new size 4 is larger than the log (3 leaves)"),
    ],
)
def test_consistency_sizes_that_do_not_fit_are_a_bad_request(three, query, problem) -> None:
    response = Client().get(CONSISTENCY, query)
    assert response.status_code == 400
    assert problem in response.json()["error"]


def test_the_log_endpoints_answer_only_get(three) -> None:
    for url in (CHECKPOINT, INCLUSION, CONSISTENCY):
        assert Client().post(url).status_code == 405


def test_a_resealed_deposit_is_proven_by_its_newest_leaf(three) -> None:
    """A deposit sealed again (a new manifest) has two leaves; its proof is for the newest."""
    log_append(deposit_id=three[0].pk, manifest_sha256="e" * 64)
    data = Client().get(INCLUSION, {"deposit": three[0].pk}).json()
    assert data["index"] == 3 and data["tree_size"] == 4
