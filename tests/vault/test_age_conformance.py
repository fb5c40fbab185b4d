"""C2SP CCTV conformance vectors for the age implementation.

Every vector in the directory is collected. Those our implementation does not
support are skipped by one explicit rule (hybrid post-quantum identities), and
a test pins the exact list of skipped vectors so nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vault.age import (
    AgeError,
    ArmorError,
    HeaderError,
    HeaderMacError,
    Identity,
    NoIdentityMatchError,
    PayloadError,
    ScryptIdentity,
    X25519Identity,
    decrypt,
    read_header,
    rewrap_header,
)

# The C2SP age conformance vectors, copied into the repository with their licence.
CCTV_DIR = Path(
    os.environ.get("AGE_CCTV_DIR") or Path(__file__).resolve().parents[1] / "data" / "age-cctv"
)

EXPECT_BY_ERROR: dict[type[AgeError], str] = {
    NoIdentityMatchError: "no match",
    HeaderMacError: "HMAC failure",
    HeaderError: "header failure",
    PayloadError: "payload failure",
    ArmorError: "armor failure",
}

HYBRID_IDENTITY_PREFIX = "AGE-SECRET-KEY-PQ-"
HYBRID_SKIP_REASON = (
    "needs an mlkem768x25519 (hybrid post-quantum) identity, which this implementation "
    "does not support"
)
# Exactly the vectors that list a hybrid identity. If the vector set changes,
# test_skipped_vectors_are_exactly_the_hybrid_ones fails and this list must be
# reviewed by hand.
EXPECTED_SKIPS = frozenset(
    {
        "armor_hybrid",
        "hybrid",
        "hybrid_and_x25519",
        "hybrid_bad_tag",
        "hybrid_currupted_enc_mlkem",
        "hybrid_currupted_enc_x25519",
        "hybrid_extra_argument",
        "hybrid_grease",
        "hybrid_identity",
        "hybrid_long_file_key",
        "hybrid_long_share",
        "hybrid_low_order",
        "hybrid_multiple_recipients",
        "hybrid_no_match",
        "hybrid_not_canonical_body",
        "hybrid_not_canonical_enc",
        "hybrid_short_share",
        "hybrid_uppercase",
        "hybrid_x25519_arg",
    }
)


@dataclass(frozen=True)
class Vector:
    name: str
    expect: str
    payload_sha256: str | None
    file_key: bytes
    armored: bool
    identities: tuple[str, ...] = field(default=())
    passphrases: tuple[str, ...] = field(default=())
    age_file: bytes = b""

    @property
    def skip_reason(self) -> str | None:
        if any(key.startswith(HYBRID_IDENTITY_PREFIX) for key in self.identities):
            return HYBRID_SKIP_REASON
        return None

    def make_identities(self) -> list[Identity]:
        keys: list[Identity] = [X25519Identity.from_string(key) for key in self.identities]
        return keys + [ScryptIdentity(passphrase) for passphrase in self.passphrases]


def _load_vector(path: Path) -> Vector:
    metadata, separator, age_file = path.read_bytes().partition(b"\n\n")
    assert separator, f"{path.name}: no blank line after the metadata"
    values: dict[str, list[str]] = {}
    for line in metadata.decode("utf-8").split("\n"):
        key, _, value = line.partition(": ")
        values.setdefault(key, []).append(value)
    unknown = set(values) - {
        "expect",
        "payload",
        "file key",
        "identity",
        "passphrase",
        "armored",
        "compressed",
        "comment",
    }
    assert not unknown, f"{path.name}: unknown metadata {unknown}"
    compression = values.get("compressed", [None])[0]
    if compression == "zlib":
        age_file = zlib.decompress(age_file)
    else:
        assert compression is None, f"{path.name}: unknown compression {compression}"
    return Vector(
        name=path.name,
        expect=values["expect"][0],
        payload_sha256=values.get("payload", [None])[0],
        file_key=bytes.fromhex(values["file key"][0]),
        armored=values.get("armored", ["no"])[0] == "yes",
        identities=tuple(values.get("identity", [])),
        passphrases=tuple(values.get("passphrase", [])),
        age_file=age_file,
    )


def _vector_names() -> list[str]:
    if not CCTV_DIR.is_dir():
        return []
    return sorted(
        path.name
        for path in CCTV_DIR.iterdir()
        if path.is_file() and path.suffix != ".md" and not path.name.startswith(".")
    )


VECTOR_NAMES = _vector_names()


def _vector(name: str) -> Vector:
    vector = _load_vector(CCTV_DIR / name)
    if vector.skip_reason is not None:
        pytest.skip(vector.skip_reason)
    return vector


def _decrypt_vector(vector: Vector, *, armored: bool | None) -> tuple[str, bytes]:
    """Return the outcome as a CCTV ``expect`` string, and all released plaintext."""
    released = io.BytesIO()
    try:
        decrypt(io.BytesIO(vector.age_file), released, vector.make_identities(), armored=armored)
    except AgeError as error:
        outcome = next(expect for cls, expect in EXPECT_BY_ERROR.items() if isinstance(error, cls))
        assert "\n" not in str(error), "error messages are one line"
        return outcome, released.getvalue()
    return "success", released.getvalue()


def test_the_vector_directory_is_present_and_complete() -> None:
    assert CCTV_DIR.is_dir(), (
        f"age CCTV vectors not found at {CCTV_DIR}; set AGE_CCTV_DIR to their location"
    )
    assert len(VECTOR_NAMES) >= 140


def test_skipped_vectors_are_exactly_the_hybrid_ones() -> None:
    skipped = {
        name for name in VECTOR_NAMES if _load_vector(CCTV_DIR / name).skip_reason is not None
    }
    assert skipped == EXPECTED_SKIPS


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_outcome_and_released_plaintext(name: str) -> None:
    vector = _vector(name)
    outcome, released = _decrypt_vector(vector, armored=vector.armored)
    assert outcome == vector.expect
    if vector.payload_sha256 is None:
        assert released == b"", "no plaintext may be released for this vector"
    else:
        assert hashlib.sha256(released).hexdigest() == vector.payload_sha256


SUCCESS_NAMES = [
    name
    for name in VECTOR_NAMES
    if _load_vector(CCTV_DIR / name).expect == "success"
    and _load_vector(CCTV_DIR / name).skip_reason is None
]


@pytest.mark.parametrize("name", SUCCESS_NAMES)
def test_successful_vector_header_mac_verifies_with_its_file_key(name: str) -> None:
    vector = _vector(name)
    header = read_header(io.BytesIO(vector.age_file), armored=vector.armored)
    header.verify_mac(vector.file_key)
    with pytest.raises(HeaderMacError):
        header.verify_mac(bytes(16))


@pytest.mark.parametrize("name", [name for name in SUCCESS_NAMES if name.startswith("armor_")])
def test_armored_vector_is_detected_without_being_told(name: str) -> None:
    vector = _vector(name)
    assert _decrypt_vector(vector, armored=None) == _decrypt_vector(vector, armored=True)


@pytest.mark.parametrize("name", [n for n in SUCCESS_NAMES if not n.startswith("armor_")])
def test_rewrapping_a_vector_keeps_its_payload_and_plaintext(name: str) -> None:
    vector = _vector(name)
    new_identity = X25519Identity.generate()
    source = io.BytesIO(vector.age_file)
    new_header, offset = rewrap_header(source, vector.make_identities(), [new_identity.recipient()])
    rewrapped = new_header + vector.age_file[offset:]
    released = io.BytesIO()
    decrypt(io.BytesIO(rewrapped), released, [new_identity])
    assert hashlib.sha256(released.getvalue()).hexdigest() == vector.payload_sha256
