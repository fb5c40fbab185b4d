"""C2SP signed notes and checkpoints: Go interop vectors, round trips, hostile input."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import override_settings

from vault import signed_note
from vault.signed_note import NoteError

# Values copied from golang.org/x/mod/sumdb/note, note_test.go (TestSign, TestOpen,
# TestNewVerifier): Go's reference implementation of the C2SP signed-note format.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH_VERIFIER_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox"
    "33WWd1RvMc+QQ=\n"
)
ROOT = bytes(range(32))


def _go_private_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[-1])
    assert raw[0] == signed_note.ED25519_ALGORITHM
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_signing_reproduces_go_output_byte_for_byte() -> None:
    private_key = _go_private_key()
    assert signed_note.sign_note(GO_TEXT, "PeterNeumann", private_key) == (
        GO_TEXT + "\n" + GO_PETER_SIG
    )
    assert signed_note.verifier_key("PeterNeumann", private_key.public_key()) == GO_VERIFIER_KEY
    assert signed_note.key_id("PeterNeumann", private_key.public_key()).hex() == "c74f20a3"


def test_go_notes_verify_and_unknown_signatures_are_skipped() -> None:
    name, peter = signed_note.parse_verifier_key(GO_VERIFIER_KEY)
    _, enoch = signed_note.parse_verifier_key(GO_ENOCH_VERIFIER_KEY)
    note = GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    assert signed_note.verify_note(note, name, peter) == GO_TEXT
    assert signed_note.verify_note(note, "EnochRoot", enoch) == GO_TEXT
    with pytest.raises(NoteError, match="no signature by EnochRoot"):
        signed_note.verify_note(GO_TEXT + "\n" + GO_PETER_SIG, "EnochRoot", enoch)


def test_go_invalid_signature_is_an_error_not_a_skip() -> None:
    _, peter = signed_note.parse_verifier_key(GO_VERIFIER_KEY)
    corrupt = GO_TEXT + "\n" + GO_PETER_SIG[:60] + "ABCD" + GO_PETER_SIG[60:]
    with pytest.raises(NoteError, match="signature by PeterNeumann does not verify"):
        signed_note.verify_note(corrupt, "PeterNeumann", peter)


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (GO_TEXT, "no blank line"),
        (GO_TEXT + "\n", "no signature lines"),
        (GO_TEXT + "\n" + GO_PETER_SIG[:-1], "must end with a newline"),
        ("\x01" + GO_TEXT + "\n" + GO_PETER_SIG, "control character"),
        (GO_TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/Sff=\n", "is not '— <name>"),
        (GO_TEXT + "\n" + GO_PETER_SIG + "Unexpected line.\n", "does not start with an em dash"),
        (GO_TEXT + "\n" + GO_PETER_SIG * 101, "more than 100 signature lines"),
    ],
)
def test_go_malformed_notes_are_refused(note: str, reason: str) -> None:
    """The `badMsgs` of Go's TestOpen, plus its too-many-signatures case."""
    _, peter = signed_note.parse_verifier_key(GO_VERIFIER_KEY)
    with pytest.raises(NoteError, match=reason):
        signed_note.verify_note(note, "PeterNeumann", peter)


def test_go_mangled_verifier_keys_are_refused() -> None:
    """A sample of Go's TestNewVerifier manglings: truncations and single-byte changes."""
    for bad in [
        GO_VERIFIER_KEY[:-1],
        GO_VERIFIER_KEY[1:],
        GO_VERIFIER_KEY.replace("c74f20a3", "c74f20a4"),
        GO_VERIFIER_KEY.replace("+ARpc", "+ZRpc"),
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]:
        with pytest.raises(NoteError):
            signed_note.parse_verifier_key(bad)


@override_settings(ESCROW_SIGNATURE_DOMAIN="escrow.example")
def test_log_origin_names_the_domain() -> None:
    assert signed_note.log_origin() == "escrow.example/deposits"


def test_checkpoint_round_trip_and_signature(key: Ed25519PrivateKey) -> None:
    body = signed_note.checkpoint_body("escrow.example/deposits", 42, ROOT)
    assert body == ("escrow.example/deposits\n42\n" + base64.b64encode(ROOT).decode() + "\n")
    assert signed_note.parse_checkpoint(body) == ("escrow.example/deposits", 42, ROOT)
    note = signed_note.sign_note(body, "escrow.example/deposits", key)
    assert note.startswith(body + "\n— escrow.example/deposits ")
    assert signed_note.verify_note(note, "escrow.example/deposits", key.public_key()) == body
    keyid = signed_note.key_id("escrow.example/deposits", key.public_key())
    signature_b64 = note.rsplit(" ", 1)[1].strip()
    assert base64.b64decode(signature_b64)[:4] == keyid
    verifier = signed_note.verifier_key("escrow.example/deposits", key.public_key())
    name, public_key = signed_note.parse_verifier_key(verifier)
    assert name == "escrow.example/deposits"
    assert signed_note.verify_note(note, name, public_key) == body


def test_a_witness_can_add_its_signature(key: Ed25519PrivateKey) -> None:
    body = signed_note.checkpoint_body("o", 1, ROOT)
    witness = Ed25519PrivateKey.generate()
    note = signed_note.sign_note(body, "log", key)
    cosigned = note + signed_note.sign_note(body, "witness", witness).split("\n\n", 1)[1]
    assert signed_note.verify_note(cosigned, "log", key.public_key()) == body
    assert signed_note.verify_note(cosigned, "witness", witness.public_key()) == body


def test_a_changed_body_or_wrong_key_fails(key: Ed25519PrivateKey) -> None:
    body = signed_note.checkpoint_body("o", 5, ROOT)
    note = signed_note.sign_note(body, "log", key)
    with pytest.raises(NoteError, match="does not verify"):
        signed_note.verify_note(note.replace("\n5\n", "\n6\n"), "log", key.public_key())
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(NoteError, match="no signature by log with key id"):
        signed_note.verify_note(note, "log", other)
    with pytest.raises(NoteError, match="no signature by other"):
        signed_note.verify_note(note, "other", key.public_key())


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n.replace("—", "-"), "does not start with an em dash"),
        (lambda n: n.replace("—", "\u2013"), "does not start with an em dash"),
        (lambda n: n[:-3] + "!=\n", "not valid base64"),
        (lambda n: n + "extra line\n", "does not start with an em dash"),
        (lambda n: n + "\n", "must end with a newline|no signature lines|blank line"),
        (lambda n: n.replace(" log ", " log  "), "is not '— <name>"),
        (lambda n: n.rstrip("\n"), "must end with a newline"),
        (lambda n: n[: n.index("— ")] + "— log AAAA\n", "too short"),
    ],
)
def test_hostile_notes_are_refused(
    mangle: Callable[[str], str], reason: str, key: Ed25519PrivateKey
) -> None:
    note = signed_note.sign_note(signed_note.checkpoint_body("o", 5, ROOT), "log", key)
    with pytest.raises(NoteError, match=reason):
        signed_note.verify_note(mangle(note), "log", key.public_key())


def test_non_canonical_base64_in_a_signature_is_refused(key: Ed25519PrivateKey) -> None:
    note = signed_note.sign_note(signed_note.checkpoint_body("o", 5, ROOT), "log", key)
    body, sig_line = note.split("\n\n")
    encoded = sig_line.split(" ")[2].strip()
    # 68 bytes encode with one '=' pad; the last character's two low bits are unused.
    last = encoded[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) ^ 1]
    mangled = body + "\n\n— log " + encoded[:-2] + twin + "=\n"
    with pytest.raises(NoteError, match="canonical base64"):
        signed_note.verify_note(mangled, "log", key.public_key())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("o\n5\n", "three lines"),
        ("o\n5\n" + base64.b64encode(ROOT).decode() + "\nextension\n", "extension lines"),
        ("o\n+5\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n05\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n-1\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n5.0\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n\u0661\u0662\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n" + "9" * 20 + "\n" + base64.b64encode(ROOT).decode() + "\n", "not a decimal"),
        ("o\n5\n" + base64.b64encode(ROOT[:31]).decode() + "\n", "not 32 bytes"),
        ("o\n5\nnot base64!\n", "not valid base64"),
        ("o\n5\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n", "base64"),
        ("o\n5\n" + base64.b64encode(ROOT).decode(), "end with a newline"),
        ("\n5\n" + base64.b64encode(ROOT).decode() + "\n", "blank line"),
        (" o\n5\n" + base64.b64encode(ROOT).decode() + "\n", "surrounding spaces"),
        ("o\x00\n5\n" + base64.b64encode(ROOT).decode() + "\n", "control character"),
    ],
)
def test_hostile_checkpoints_are_refused(body: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        signed_note.parse_checkpoint(body)


def test_checkpoint_body_refuses_bad_values() -> None:
    with pytest.raises(NoteError, match="one non-empty line"):
        signed_note.checkpoint_body("evil\norigin", 1, ROOT)
    with pytest.raises(NoteError, match="one non-empty line"):
        signed_note.checkpoint_body("", 1, ROOT)
    with pytest.raises(NoteError, match="non-negative integer"):
        signed_note.checkpoint_body("o", -1, ROOT)
    with pytest.raises(NoteError, match="non-negative integer"):
        signed_note.checkpoint_body("o", True, ROOT)
    with pytest.raises(NoteError, match="32 bytes"):
        signed_note.checkpoint_body("o", 1, ROOT[:31])


def test_sign_note_refuses_bad_bodies_and_names(key: Ed25519PrivateKey) -> None:
    with pytest.raises(NoteError, match="end with a newline"):
        signed_note.sign_note("abc", "log", key)
    with pytest.raises(NoteError, match="empty"):
        signed_note.sign_note("", "log", key)
    for name in ["a+b", "a b", "", "tab\tname"]:
        with pytest.raises(NoteError, match="no spaces and no"):
            signed_note.sign_note("abc\n", name, key)
