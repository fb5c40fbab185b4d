"""Unit tests of the age API: keys, round trips, scrypt, armor, re-wrap, hostile input."""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.age import (
    AgeError,
    ArmorError,
    HeaderError,
    HeaderMacError,
    Identity,
    KeyFormatError,
    NoIdentityMatchError,
    PayloadError,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    decrypt,
    encrypt,
    parse_identity_file,
    read_header,
    rewrap,
    rewrap_header,
)

CHUNK = 64 * 1024
# The X25519 example from the age specification (c2sp.org/age).
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def encrypt_bytes(plaintext: bytes, recipients: list[Recipient], *, armor: bool = False) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(plaintext), out, recipients, armor=armor)
    return out.getvalue()


def decrypt_bytes(data: bytes, identities: list[Identity]) -> bytes:
    out = io.BytesIO()
    decrypt(io.BytesIO(data), out, identities)
    return out.getvalue()


def failed_decryption(
    data: bytes, identities: list[Identity], expected: type[AgeError]
) -> tuple[AgeError, bytes]:
    """Decrypt ``data`` expecting ``expected``; return the error and what was released."""
    out = io.BytesIO()
    with pytest.raises(expected) as caught:
        decrypt(io.BytesIO(data), out, identities)
    assert "\n" not in str(caught.value), "error messages are one line"
    return caught.value, out.getvalue()


def replace_char(data: bytes, index: int) -> bytes:
    """Swap one base64 character for another, keeping the text parseable."""
    replacement = b"B" if data[index : index + 1] != b"B" else b"C"
    return data[:index] + replacement + data[index + 1 :]


@pytest.fixture(scope="module")
def identity() -> X25519Identity:
    return X25519Identity.generate()


@pytest.fixture(scope="module")
def three_chunks() -> bytes:
    return os.urandom(2 * CHUNK + 1000)


# --- keys --------------------------------------------------------------------------------


def test_generated_identity_roundtrips_through_its_uppercase_string() -> None:
    identity = X25519Identity.generate()
    text = identity.to_string()
    assert text.startswith("AGE-SECRET-KEY-1")
    assert text == text.upper()
    assert X25519Identity.from_string(text) == identity


def test_spec_example_identity_has_the_spec_example_recipient() -> None:
    identity = X25519Identity.from_string(SPEC_IDENTITY)
    assert identity.recipient().to_string() == SPEC_RECIPIENT
    assert identity.to_string() == SPEC_IDENTITY


def test_recipient_roundtrips_through_its_string() -> None:
    recipient = X25519Identity.generate().recipient()
    text = recipient.to_string()
    assert text.startswith("age1")
    assert X25519Recipient.from_string(text) == recipient
    assert X25519Recipient.from_string(SPEC_RECIPIENT).to_string() == SPEC_RECIPIENT


@pytest.mark.parametrize(
    "text",
    [
        "",
        SPEC_IDENTITY[:-1] + "Y",  # checksum broken
        SPEC_IDENTITY[:20] + SPEC_IDENTITY[20:].lower(),  # mixed case
        SPEC_IDENTITY.lower(),  # identities are uppercase
        SPEC_RECIPIENT,  # a recipient is not an identity
        "AGE-SECRET-KEY-1QQQQQQQQ",
    ],
)
def test_it_rejects_malformed_identity_strings(text: str) -> None:
    with pytest.raises(KeyFormatError):
        X25519Identity.from_string(text)


@pytest.mark.parametrize(
    "text",
    ["", SPEC_RECIPIENT[:-1] + "q", SPEC_RECIPIENT.upper(), SPEC_IDENTITY, "age1qqqqqqqq"],
)
def test_it_rejects_malformed_recipient_strings(text: str) -> None:
    with pytest.raises(KeyFormatError):
        X25519Recipient.from_string(text)


def test_identity_repr_does_not_reveal_the_secret() -> None:
    identity = X25519Identity.from_string(SPEC_IDENTITY)
    assert SPEC_IDENTITY not in repr(identity)
    assert SPEC_RECIPIENT in repr(identity)


def test_it_parses_an_identity_file_as_written_by_age_keygen() -> None:
    second = X25519Identity.generate()
    text = (
        "# created: 2024-01-01T00:00:00Z\r\n"
        f"# public key: {SPEC_RECIPIENT}\r\n"
        f"{SPEC_IDENTITY}\r\n"
        "\n"
        f"# public key: {second.recipient().to_string()}\n"
        f"{second.to_string()}\n"
    )
    identities = parse_identity_file(text)
    assert [i.recipient().to_string() for i in identities] == [
        SPEC_RECIPIENT,
        second.recipient().to_string(),
    ]


def test_identity_file_errors_name_the_line_but_not_its_content() -> None:
    secret_looking = SPEC_IDENTITY[:-1] + "Y"
    with pytest.raises(KeyFormatError) as caught:
        parse_identity_file(f"# comment\n{SPEC_IDENTITY}\n{secret_looking}\n")
    assert "line 3" in str(caught.value)
    assert secret_looking not in str(caught.value)


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_it_rejects_an_identity_file_without_identities(text: str) -> None:
    with pytest.raises(KeyFormatError):
        parse_identity_file(text)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 200_000])
def test_it_roundtrips_sizes_around_chunk_boundaries(identity: X25519Identity, size: int) -> None:
    plaintext = os.urandom(size)
    ciphertext = encrypt_bytes(plaintext, [identity.recipient()])
    header = read_header(io.BytesIO(ciphertext))
    chunks = max(1, -(-size // CHUNK))
    # nonce + plaintext + one 16-byte tag per chunk: proves the 64 KiB chunking.
    assert len(ciphertext) - header.size == 16 + size + 16 * chunks
    assert decrypt_bytes(ciphertext, [identity]) == plaintext


@settings(max_examples=25, deadline=None, database=None)
@given(plaintext=st.binary(max_size=3 * CHUNK))
def test_any_plaintext_roundtrips(plaintext: bytes) -> None:
    identity = X25519Identity.from_string(SPEC_IDENTITY)
    assert decrypt_bytes(encrypt_bytes(plaintext, [identity.recipient()]), [identity]) == plaintext


def test_each_of_several_recipients_can_decrypt(three_chunks: bytes) -> None:
    identities = [X25519Identity.generate() for _ in range(3)]
    ciphertext = encrypt_bytes(three_chunks, [i.recipient() for i in identities])
    assert len(read_header(io.BytesIO(ciphertext)).stanzas) == 3
    for identity in identities:
        assert decrypt_bytes(ciphertext, [identity]) == three_chunks


def test_it_tries_every_identity_until_one_matches(identity: X25519Identity) -> None:
    ciphertext = encrypt_bytes(b"secret", [identity.recipient()])
    strangers: list[Identity] = [X25519Identity.generate(), ScryptIdentity("nope")]
    assert decrypt_bytes(ciphertext, [*strangers, identity]) == b"secret"


def test_progress_reports_cumulative_plaintext_bytes(
    identity: X25519Identity, three_chunks: bytes
) -> None:
    encrypted: list[int] = []
    out = io.BytesIO()
    encrypt(io.BytesIO(three_chunks), out, [identity.recipient()], progress=encrypted.append)
    decrypted: list[int] = []
    decrypt(io.BytesIO(out.getvalue()), io.BytesIO(), [identity], progress=decrypted.append)
    assert encrypted == decrypted == [CHUNK, 2 * CHUNK, len(three_chunks)]


def test_it_reads_sources_without_readinto(identity: X25519Identity) -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)
            self.read = self._inner.read
            self.readline = self._inner.readline

    plaintext = os.urandom(CHUNK + 5)
    out = io.BytesIO()
    encrypt(ReadOnly(plaintext), out, [identity.recipient()])  # type: ignore[arg-type]
    result = io.BytesIO()
    decrypt(ReadOnly(out.getvalue()), result, [identity])  # type: ignore[arg-type]
    assert result.getvalue() == plaintext


def test_it_requires_recipients_and_identities(identity: X25519Identity) -> None:
    with pytest.raises(ValueError):
        encrypt(io.BytesIO(b"x"), io.BytesIO(), [])
    ciphertext = encrypt_bytes(b"x", [identity.recipient()])
    with pytest.raises(ValueError):
        decrypt(io.BytesIO(ciphertext), io.BytesIO(), [])


def test_streaming_memory_does_not_grow_with_file_size(
    identity: X25519Identity, tmp_path: Path
) -> None:
    class Discard:
        def write(self, data: bytes) -> int:
            return len(data)

    plain, encrypted = tmp_path / "plain", tmp_path / "plain.age"
    plain.write_bytes(os.urandom(24 * 1024 * 1024))
    tracemalloc.start()
    try:
        with plain.open("rb") as src, encrypted.open("wb") as dst:
            encrypt(src, dst, [identity.recipient()])
        with encrypted.open("rb") as src:
            decrypt(src, Discard(), [identity])  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"peak traced memory {peak} bytes for a 24 MiB file"


# --- scrypt --------------------------------------------------------------------------------


def test_passphrase_roundtrip(three_chunks: bytes) -> None:
    ciphertext = encrypt_bytes(three_chunks, [ScryptRecipient("hunter2", work_factor=4)])
    [stanza] = read_header(io.BytesIO(ciphertext)).stanzas
    assert stanza.args[0] == "scrypt"
    assert stanza.args[2] == "4"
    assert decrypt_bytes(ciphertext, [ScryptIdentity("hunter2")]) == three_chunks


def test_a_wrong_passphrase_is_no_match() -> None:
    ciphertext = encrypt_bytes(b"data", [ScryptRecipient("hunter2", work_factor=4)])
    _, released = failed_decryption(ciphertext, [ScryptIdentity("hunter3")], NoIdentityMatchError)
    assert released == b""


def test_a_passphrase_recipient_cannot_be_mixed_with_others(identity: X25519Identity) -> None:
    recipients: list[Recipient] = [ScryptRecipient("pw", work_factor=2), identity.recipient()]
    with pytest.raises(ValueError, match="only recipient"):
        encrypt_bytes(b"data", recipients)


def test_it_refuses_a_work_factor_above_the_maximum() -> None:
    ciphertext = encrypt_bytes(b"data", [ScryptRecipient("pw", work_factor=6)])
    _, released = failed_decryption(
        ciphertext, [ScryptIdentity("pw", max_work_factor=5)], HeaderError
    )
    assert released == b""
    # A forged factor of 2**30 would need 128 GiB; it must be refused before any work.
    forged = ciphertext.replace(b" 6\n", b" 30\n", 1)
    assert forged != ciphertext
    failed_decryption(forged, [ScryptIdentity("pw")], HeaderError)


@pytest.mark.parametrize("work_factor", [0, 31])
def test_it_rejects_out_of_range_work_factor_settings(work_factor: int) -> None:
    with pytest.raises(ValueError):
        ScryptRecipient("pw", work_factor=work_factor)
    with pytest.raises(ValueError):
        ScryptIdentity("pw", max_work_factor=work_factor)


def test_it_rejects_an_empty_passphrase() -> None:
    with pytest.raises(ValueError):
        ScryptRecipient("")


# --- armor ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 46, 48, 20_000])
def test_armored_output_is_strict_pem_and_decrypts(identity: X25519Identity, size: int) -> None:
    plaintext = os.urandom(size)
    armored = encrypt_bytes(plaintext, [identity.recipient()], armor=True)
    lines = armored.decode("ascii").split("\n")
    assert lines[0] == "-----BEGIN AGE ENCRYPTED FILE-----"
    assert lines[-2:] == ["-----END AGE ENCRYPTED FILE-----", ""]
    body = lines[1:-2]
    assert all(len(line) == 64 for line in body[:-1])
    assert 0 < len(body[-1]) <= 64
    assert decrypt_bytes(armored, [identity]) == plaintext
    with pytest.raises(HeaderError):
        decrypt(io.BytesIO(armored), io.BytesIO(), [identity], armored=False)


def test_forcing_armor_on_a_binary_file_is_an_armor_failure(identity: X25519Identity) -> None:
    ciphertext = encrypt_bytes(b"data", [identity.recipient()])
    with pytest.raises(ArmorError):
        decrypt(io.BytesIO(ciphertext), io.BytesIO(), [identity], armored=True)


# --- headers and re-wrap -------------------------------------------------------------------


def test_read_header_lists_stanzas_and_stops_at_the_nonce(identity: X25519Identity) -> None:
    other = X25519Identity.generate()
    ciphertext = encrypt_bytes(b"data", [identity.recipient(), other.recipient()])
    source = io.BytesIO(ciphertext)
    header = read_header(source)
    assert [stanza.type for stanza in header.stanzas] == ["X25519", "X25519"]
    assert source.tell() == header.size
    assert ciphertext[: header.size].endswith(b"\n")
    assert ciphertext[: len(header.mac_input)] == header.mac_input


def test_rewrap_header_reuses_the_payload_bytes(three_chunks: bytes) -> None:
    owner, agent = X25519Identity.generate(), X25519Identity.generate()
    original = encrypt_bytes(three_chunks, [owner.recipient()])
    new_header, offset = rewrap_header(io.BytesIO(original), [owner], [agent.recipient()])
    assert offset == read_header(io.BytesIO(original)).size
    assert read_header(io.BytesIO(new_header)).size == len(new_header)
    rewrapped = new_header + original[offset:]
    assert rewrapped[len(new_header) :] == original[offset:]
    assert decrypt_bytes(rewrapped, [agent]) == three_chunks
    failed_decryption(rewrapped, [owner], NoIdentityMatchError)


def test_rewrap_header_reads_only_the_header(identity: X25519Identity) -> None:
    class CountingReader(io.BytesIO):
        consumed = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            self.consumed += len(data)
            return data

        def readline(self, size: int | None = -1) -> bytes:
            data = super().readline(size)
            self.consumed += len(data)
            return data

    original = encrypt_bytes(os.urandom(2 * 1024 * 1024), [identity.recipient()])
    source = CountingReader(original)
    _, offset = rewrap_header(source, [identity], [X25519Identity.generate().recipient()])
    assert source.consumed == offset + 16  # the header, then a check that the nonce exists


def test_rewrap_header_offset_counts_from_the_starting_position(
    identity: X25519Identity,
) -> None:
    original = encrypt_bytes(b"data", [identity.recipient()])
    source = io.BytesIO(b"archive preamble" + original)
    source.seek(len(b"archive preamble"))
    _, offset = rewrap_header(source, [identity], [identity.recipient()])
    assert offset == read_header(io.BytesIO(original)).size


def test_rewrap_can_keep_the_old_recipient_and_add_a_new_one(three_chunks: bytes) -> None:
    owner, agent = X25519Identity.generate(), X25519Identity.generate()
    original = encrypt_bytes(three_chunks, [owner.recipient()])
    recipients: list[Recipient] = [owner.recipient(), agent.recipient()]
    new_header, offset = rewrap_header(io.BytesIO(original), [owner], recipients)
    rewrapped = new_header + original[offset:]
    assert decrypt_bytes(rewrapped, [owner]) == three_chunks
    assert decrypt_bytes(rewrapped, [agent]) == three_chunks


def test_rewrap_to_a_passphrase(identity: X25519Identity) -> None:
    original = encrypt_bytes(b"data", [identity.recipient()])
    new_header, offset = rewrap_header(
        io.BytesIO(original), [identity], [ScryptRecipient("pw", work_factor=3)]
    )
    assert decrypt_bytes(new_header + original[offset:], [ScryptIdentity("pw")]) == b"data"


def test_rewrap_with_a_wrong_identity_is_no_match(identity: X25519Identity) -> None:
    original = encrypt_bytes(b"data", [identity.recipient()])
    stranger = X25519Identity.generate()
    with pytest.raises(NoIdentityMatchError):
        rewrap_header(io.BytesIO(original), [stranger], [stranger.recipient()])
    with pytest.raises(NoIdentityMatchError):
        rewrap(io.BytesIO(original), io.BytesIO(), [stranger], [stranger.recipient()])


def test_streaming_rewrap_writes_a_new_header_and_the_payload_verbatim(
    three_chunks: bytes,
) -> None:
    owner, agent = X25519Identity.generate(), X25519Identity.generate()
    original = encrypt_bytes(three_chunks, [owner.recipient()])
    out = io.BytesIO()
    copied = rewrap(io.BytesIO(original), out, [owner], [agent.recipient()])
    offset = read_header(io.BytesIO(original)).size
    new_header_size = read_header(io.BytesIO(out.getvalue())).size
    assert copied == len(original) - offset
    assert out.getvalue()[new_header_size:] == original[offset:]
    assert decrypt_bytes(out.getvalue(), [agent]) == three_chunks


def test_streaming_rewrap_accepts_armored_input(identity: X25519Identity) -> None:
    armored = encrypt_bytes(b"armored data", [identity.recipient()], armor=True)
    agent = X25519Identity.generate()
    out = io.BytesIO()
    rewrap(io.BytesIO(armored), out, [identity], [agent.recipient()])
    assert out.getvalue().startswith(b"age-encryption.org/v1\n")
    assert decrypt_bytes(out.getvalue(), [agent]) == b"armored data"
    with pytest.raises(ArmorError):
        rewrap_header(io.BytesIO(armored), [identity], [agent.recipient()])


# --- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "expected", "released_chunks"),
    [
        (lambda header: 10, HeaderError, 0),  # inside the version line
        (lambda header: header - 5, HeaderError, 0),  # inside the MAC line
        (lambda header: header + 8, HeaderError, 0),  # inside the nonce
        (lambda header: header + 16, PayloadError, 0),  # no chunks at all
        (lambda header: header + 16 + 100, PayloadError, 0),  # inside the first chunk
        (lambda header: header + 16 + CHUNK + 16, PayloadError, 1),  # at a chunk boundary
        (lambda header: header + 16 + 2 * (CHUNK + 16) + 10, PayloadError, 2),  # in the last
        (lambda header: -1, PayloadError, 2),  # one byte short
    ],
)
def test_it_rejects_truncated_files_releasing_only_verified_chunks(
    identity: X25519Identity,
    three_chunks: bytes,
    cut: object,
    expected: type[AgeError],
    released_chunks: int,
) -> None:
    ciphertext = encrypt_bytes(three_chunks, [identity.recipient()])
    header_size = read_header(io.BytesIO(ciphertext)).size
    end = cut(header_size)  # type: ignore[operator]
    _, released = failed_decryption(ciphertext[:end], [identity], expected)
    assert released == three_chunks[: released_chunks * CHUNK]


def test_it_rejects_trailing_data_after_the_final_chunk(identity: X25519Identity) -> None:
    ciphertext = encrypt_bytes(b"short file", [identity.recipient()])
    _, released = failed_decryption(ciphertext + b"x", [identity], PayloadError)
    assert released == b""


def test_a_flipped_payload_byte_releases_only_the_chunks_before_it(
    identity: X25519Identity, three_chunks: bytes
) -> None:
    ciphertext = bytearray(encrypt_bytes(three_chunks, [identity.recipient()]))
    header_size = read_header(io.BytesIO(bytes(ciphertext))).size
    ciphertext[header_size + 16 + CHUNK + 16 + 500] ^= 0x01  # inside the second chunk
    _, released = failed_decryption(bytes(ciphertext), [identity], PayloadError)
    assert released == three_chunks[:CHUNK]


def test_a_flipped_nonce_byte_releases_nothing(identity: X25519Identity) -> None:
    ciphertext = bytearray(encrypt_bytes(b"data", [identity.recipient()]))
    ciphertext[read_header(io.BytesIO(bytes(ciphertext))).size] ^= 0x80
    _, released = failed_decryption(bytes(ciphertext), [identity], PayloadError)
    assert released == b""


def test_a_modified_stanza_body_is_no_match(identity: X25519Identity) -> None:
    ciphertext = encrypt_bytes(b"data", [identity.recipient()])
    body_start = ciphertext.index(b"\n", ciphertext.index(b"-> X25519")) + 1
    tampered = replace_char(ciphertext, body_start + 3)
    _, released = failed_decryption(tampered, [identity], NoIdentityMatchError)
    assert released == b""


def test_a_modified_header_mac_is_an_hmac_failure(identity: X25519Identity) -> None:
    ciphertext = encrypt_bytes(b"data", [identity.recipient()])
    tampered = replace_char(ciphertext, ciphertext.index(b"\n--- ") + 8)
    _, released = failed_decryption(tampered, [identity], HeaderMacError)
    assert released == b""


def test_an_injected_stanza_is_an_hmac_failure(identity: X25519Identity) -> None:
    ciphertext = encrypt_bytes(b"data", [identity.recipient()])
    injected = ciphertext.replace(b"\n--- ", b"\n-> grease x\n\n--- ", 1)
    failed_decryption(injected, [identity], HeaderMacError)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        os.urandom(4096),
        b"age-encryption.org/v2\n-> X25519 abc\n\n--- abc\n",
        b"hello, this is not an age file\n",
        b"age-encryption.org/v1\n",
    ],
    ids=["empty", "random", "other-version", "text", "version-line-only"],
)
def test_non_age_input_is_a_header_failure(identity: X25519Identity, data: bytes) -> None:
    _, released = failed_decryption(data, [identity], HeaderError)
    assert released == b""


def test_a_wrong_identity_is_no_match_and_writes_nothing(identity: X25519Identity) -> None:
    ciphertext = encrypt_bytes(b"data", [identity.recipient()])
    _, released = failed_decryption(ciphertext, [X25519Identity.generate()], NoIdentityMatchError)
    assert released == b""


def test_an_oversize_header_line_is_rejected_without_reading_it_all(
    identity: X25519Identity,
) -> None:
    huge = b"age-encryption.org/v1\n-> " + b"A" * (8 * 1024 * 1024) + b"\n"
    source = io.BytesIO(huge)
    with pytest.raises(HeaderError, match="longer than"):
        decrypt(source, io.BytesIO(), [identity])
    assert source.tell() < 64 * 1024


@pytest.mark.parametrize(
    "error", [NoIdentityMatchError, HeaderMacError, HeaderError, PayloadError, ArmorError]
)
def test_every_failure_class_is_an_age_error(error: type[Exception]) -> None:
    assert issubclass(error, AgeError)
    assert error is not AgeError
