"""RFC 6962 Merkle trees: known answers from a reference implementation, proofs, tampering.

Known-answer values are copied from transparency-dev/merkle, file
``proof/verify_test.go`` (the Go reference implementation of RFC 6962 /
RFC 9162 used by Trillian and the Go checksum database): the eight leaves,
the roots of the trees of sizes 1..8 over them, and the inclusion and
consistency proofs listed there.

Sizes 1..1,000 (what we chose, to keep the run to a few seconds):
inclusion for every index at sizes 1..64 and, at every size 65..1,000, for
the first, middle and last index plus one random index; consistency for
every (old, new) pair with new <= 64, and for every new size 65..1,000
from old sizes 1, new - 1, a power of two below new and one random size.
A reference MTH written independently of the module (plain slicing,
straight from the RFC text) checks every root up to 64 and at 1,000.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import pytest

from vault import merkle

# transparency-dev/merkle proof/verify_test.go: `leaves`.
LEAVES = [
    bytes.fromhex(""),
    bytes.fromhex("00"),
    bytes.fromhex("10"),
    bytes.fromhex("2021"),
    bytes.fromhex("3031"),
    bytes.fromhex("40414243"),
    bytes.fromhex("5051525354555657"),
    bytes.fromhex("606162636465666768696a6b6c6d6e6f"),
]
# transparency-dev/merkle proof/verify_test.go: `roots` (trees of size 1..8).
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
# transparency-dev/merkle proof/verify_test.go: `inclusionProofs`, as (index, size, proof);
# the Go table counts leaves from 1, so its {1, 8} is our index 0.
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# transparency-dev/merkle proof/verify_test.go: `consistencyProofs`, as (old, new, proof).
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
LEAF_HASHES = [merkle.leaf_hash(d) for d in LEAVES]


def _reference_mth(hashes: Sequence[bytes]) -> bytes:
    """MTH from the RFC text, with plain slicing; independent of the module's helpers."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(
        b"\x01" + _reference_mth(hashes[:k]) + _reference_mth(hashes[k:])
    ).digest()


@pytest.fixture(scope="module")
def thousand() -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(1000)]


def test_leaf_and_node_hashes_use_the_rfc_6962_prefixes() -> None:
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        merkle.node_hash(b"L" * 32, b"R" * 32)
        == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )


def test_the_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert merkle.root([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_reference_implementation(size: int) -> None:
    assert merkle.root(LEAF_HASHES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_reference_implementation(
    index: int, size: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert merkle.inclusion_proof(index, LEAF_HASHES[:size]) == expected
    assert merkle.verify_inclusion(LEAF_HASHES[index], index, size, expected, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_implementation(
    old: int, new: int, proof: list[str]
) -> None:
    expected = [bytes.fromhex(h) for h in proof]
    assert merkle.consistency_proof(old, LEAF_HASHES[:new]) == expected
    assert merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], expected)


def _inclusion_holds(hashes: list[bytes], index: int, size: int, root: bytes) -> None:
    proof = merkle.inclusion_proof(index, hashes[:size])
    assert merkle.verify_inclusion(hashes[index], index, size, proof, root), (index, size)


def test_inclusion_at_every_size_to_1000(thousand: list[bytes]) -> None:
    rng = random.Random(6962)
    for size in range(1, 1001):
        tree = thousand[:size]
        root = merkle.root(tree)
        if size <= 64:
            assert root == _reference_mth(tree)
            indexes = set(range(size))
        else:
            indexes = {0, size // 2, size - 1, rng.randrange(size)}
        for index in indexes:
            _inclusion_holds(thousand, index, size, root)
    assert merkle.root(thousand) == _reference_mth(thousand)


def test_consistency_for_all_pairs_to_64_and_samples_to_1000(thousand: list[bytes]) -> None:
    rng = random.Random(9162)
    roots = [merkle.root(thousand[:n]) for n in range(1001)]
    pairs = [(old, new) for new in range(1, 65) for old in range(new + 1)]
    for new in range(65, 1001):
        power = 1 << ((new - 1).bit_length() - 1)
        pairs += [(old, new) for old in {1, new - 1, power, rng.randrange(1, new)}]
    for old, new in pairs:
        proof = merkle.consistency_proof(old, thousand[:new])
        assert merkle.verify_consistency(old, new, roots[old], roots[new], proof), (old, new)


Probe = tuple[tuple[bytes, int, int, list[bytes], bytes], str]


def _corrupt_inclusion(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[Probe]:
    """The probes of transparency-dev's corruptInclusionProof, as (args, description)."""
    probes: list[Probe] = [
        ((leaf, index - 1, size, proof, root), "index - 1"),
        ((leaf, index + 1, size, proof, root), "index + 1"),
        ((leaf, index ^ 2, size, proof, root), "index ^ 2"),
        ((leaf, index, size * 2, proof, root), "size * 2"),
        ((leaf, index, size // 2, proof, root), "size / 2"),
        ((b"WrongLeaf", index, size, proof, root), "wrong leaf"),
        ((merkle.leaf_hash(b"x"), index, size, proof, root), "another leaf"),
        ((leaf, index, size, proof, EMPTY_ROOT), "empty root"),
        ((leaf, index, size, proof, SOME_HASH), "random root"),
        ((leaf, index, size, [*proof, b""], root), "trailing garbage"),
        ((leaf, index, size, [*proof, root], root), "trailing root"),
        ((leaf, index, size, [b"", *proof], root), "preceding garbage"),
        ((leaf, index, size, [root, *proof], root), "preceding root"),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append(((leaf, index, size, flipped, root), f"modified proof[{i}]"))
    if proof:
        probes.append(((leaf, index, size, proof[:-1], root), "removed component"))
    if len(proof) > 1:
        probes.append(((leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root), "inserted"))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[1:])
def test_tampered_inclusion_proofs_fail(index: int, size: int, proof: list[str]) -> None:
    hashes = [bytes.fromhex(h) for h in proof]
    for args, description in _corrupt_inclusion(
        index, size, hashes, ROOTS[size - 1], LEAF_HASHES[index]
    ):
        assert not merkle.verify_inclusion(*args), description


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY[1:])
def test_tampered_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    hashes = [bytes.fromhex(h) for h in proof]
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        ((old - 1, new, r1, r2, hashes), "old - 1"),
        ((old + 1, new, r1, r2, hashes), "old + 1"),
        ((old ^ 2, new, r1, r2, hashes), "old ^ 2"),
        ((old, new * 2, r1, r2, hashes), "new * 2"),
        ((old, new // 2, r1, r2, hashes), "new / 2"),
        ((old, new, b"WrongRoot", r2, hashes), "wrong root1"),
        ((old, new, r1, b"WrongRoot", hashes), "wrong root2"),
        ((old, new, SOME_HASH, r2, hashes), "other root1"),
        ((old, new, r1, SOME_HASH, hashes), "other root2"),
        ((old, new, r2, r1, hashes), "swapped roots"),
        ((old, new, r1, r2, []), "empty proof"),
        ((old, new, r1, r2, [*hashes, b""]), "trailing garbage"),
        ((old, new, r1, r2, [*hashes, r1]), "trailing root1"),
        ((old, new, r1, r2, [*hashes, r2]), "trailing root2"),
        ((old, new, r1, r2, [b"", *hashes]), "preceding garbage"),
        ((old, new, r1, r2, [r1, *hashes]), "preceding root1"),
        ((old, new, r1, r2, [r2, *hashes]), "preceding root2"),
        ((old, new, r1, r2, [hashes[0], *hashes]), "preceding proof[0]"),
        ((old, new, r1, r2, hashes[:-1]), "truncated proof"),
    ]
    for i in range(len(hashes)):
        flipped = list(hashes)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append(((old, new, r1, r2, flipped), f"modified proof[{i}]"))
    for args, description in probes:
        assert not merkle.verify_consistency(*args), description


def test_a_tree_rebuilt_without_one_leaf_is_not_consistent(thousand: list[bytes]) -> None:
    """The fork the log exists to catch: the operator drops deposit 5 and re-publishes."""
    honest = thousand[:20]
    forked = thousand[:5] + thousand[6:21]
    proof = merkle.consistency_proof(10, forked)
    assert not merkle.verify_consistency(
        10, 20, merkle.root(honest[:10]), merkle.root(forked), proof
    )
    # Nor can the honest proof link the old head to the forked tree.
    honest_proof = merkle.consistency_proof(10, honest)
    assert not merkle.verify_consistency(
        10, 20, merkle.root(honest[:10]), merkle.root(forked), honest_proof
    )


def test_edge_sizes_of_verification() -> None:
    """Size 0 and equal sizes, after transparency-dev's TestVerifyConsistency table."""
    r = ROOTS[0]
    assert merkle.verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert merkle.verify_consistency(0, 1, EMPTY_ROOT, r, [])
    assert merkle.verify_consistency(1, 1, r, r, [])
    assert not merkle.verify_consistency(1, 1, r, ROOTS[1], [])
    assert not merkle.verify_consistency(1, 0, r, EMPTY_ROOT, [])
    assert not merkle.verify_consistency(2, 1, ROOTS[1], r, [])
    assert not merkle.verify_consistency(1, 2, r, ROOTS[1], [])
    assert not merkle.verify_consistency(0, 1, EMPTY_ROOT, r, [EMPTY_ROOT])
    assert not merkle.verify_consistency(1, 1, r, r, [EMPTY_ROOT])
    for index, size in [(0, 0), (1, 0), (2, 1), (-1, 1)]:
        assert not merkle.verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    assert merkle.verify_inclusion(LEAF_HASHES[0], 0, 1, [], ROOTS[0])
    assert not merkle.verify_inclusion(LEAF_HASHES[0], 0, 1, [], b"")
    assert not merkle.verify_inclusion(b"", 0, 1, [], ROOTS[0])
    assert not merkle.verify_inclusion(LEAF_HASHES[0], True, 2, [LEAF_HASHES[1]], ROOTS[1])


def test_proof_requests_outside_the_tree_are_refused() -> None:
    with pytest.raises(ValueError, match="outside a tree of size 8"):
        merkle.inclusion_proof(8, LEAF_HASHES)
    with pytest.raises(ValueError, match="outside a tree of size 0"):
        merkle.inclusion_proof(0, [])
    with pytest.raises(ValueError, match="not between 0 and the new size 8"):
        merkle.consistency_proof(9, LEAF_HASHES)
    with pytest.raises(ValueError, match="not between 0"):
        merkle.consistency_proof(-1, LEAF_HASHES)
    assert merkle.consistency_proof(0, LEAF_HASHES) == []
    assert merkle.consistency_proof(8, LEAF_HASHES) == []
