"""C2SP CCTV conformance vectors for the age implementation.

Every vector in the directory is collected and run, the hybrid post-quantum
(mlkem768x25519) ones included; a test pins the set of skipped vectors to the
empty set, so nothing is ever skipped silently.
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
    KeyFormatError,
    NoIdentityMatchError,
    PayloadError,
    ScryptIdentity,
    X25519Identity,
    decrypt,
    parse_identity,
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

# Every vector is run, hybrid post-quantum ones included. A vector is skipped
# only if it names a key type this implementation cannot parse; the pinned set
# below is empty, and test_no_vector_is_skipped fails if that ever changes.
EXPECTED_SKIPS: frozenset[str] = frozenset()


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
        for key in self.identities:
            try:
                parse_identity(key)
            except KeyFormatError as error:
                return f"identity of an unsupported type: {error}"
        return None

    def make_identities(self) -> list[Identity]:
        keys: list[Identity] = [parse_identity(key) for key in self.identities]
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


def test_no_vector_is_skipped() -> None:
    skipped = {
        name for name in VECTOR_NAMES if _load_vector(CCTV_DIR / name).skip_reason is not None
    }
    assert skipped == EXPECTED_SKIPS == frozenset()


def test_the_hybrid_vectors_are_all_present() -> None:
    """The 19 mlkem768x25519 vectors that were once skipped are collected and run."""
    hybrid = {name for name in VECTOR_NAMES if "hybrid" in name}
    assert len(hybrid) == 19
    assert all(
        any(key.startswith("AGE-SECRET-KEY-PQ-") for key in _load_vector(CCTV_DIR / n).identities)
        for n in hybrid
    )


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
