"""Interoperability with the reference ``age`` command-line tool, in both directions.

The project installs ``age`` (Debian package ``age``); these tests fail, rather
than skip, when it is missing, so a broken environment cannot pass unnoticed.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import shutil
import subprocess
import termios
import time
from pathlib import Path

import pytest

from vault.age import (
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

SIZES = [0, 65536, 65537, 5 * 1024 * 1024 + 123]
SIZE_IDS = ["empty", "one-full-chunk", "chunk-plus-one", "about-5MiB"]


@pytest.fixture(scope="module")
def age_tool() -> str:
    path = shutil.which("age")
    if path is None or shutil.which("age-keygen") is None:
        pytest.fail(
            "the `age` and `age-keygen` binaries are required for interop tests "
            "(install the Debian package `age`)"
        )
    return path


def run_age(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["age", *map(str, args)], capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def age_decrypt(key_file: Path, encrypted: Path) -> bytes:
    """Decrypt with ``age -d``, reading the plaintext from stdout.

    (age creates an ``-o`` file only on first write, so an empty plaintext
    would leave no file behind.)
    """
    return run_age("-d", "-i", key_file, encrypted).stdout


def write_identity_file(path: Path, identity: X25519Identity) -> Path:
    path.write_text(f"# public key: {identity.recipient().to_string()}\n{identity.to_string()}\n")
    return path


def our_encrypt(plaintext: bytes, recipients: list[X25519Recipient], path: Path) -> Path:
    with path.open("wb") as dst:
        encrypt(io.BytesIO(plaintext), dst, recipients)
    return path


def our_decrypt(path: Path, identities: list[X25519Identity]) -> bytes:
    out = io.BytesIO()
    with path.open("rb") as src:
        decrypt(src, out, identities)
    return out.getvalue()


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_age_decrypts_what_we_encrypt(age_tool: str, tmp_path: Path, size: int) -> None:
    plaintext = os.urandom(size)
    identity = X25519Identity.generate()
    encrypted = our_encrypt(plaintext, [identity.recipient()], tmp_path / "file.age")
    key_file = write_identity_file(tmp_path / "key.txt", identity)
    assert age_decrypt(key_file, encrypted) == plaintext


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_we_decrypt_what_age_encrypts(age_tool: str, tmp_path: Path, size: int) -> None:
    plaintext = os.urandom(size)
    (tmp_path / "plain").write_bytes(plaintext)
    identity = X25519Identity.generate()
    recipient = identity.recipient().to_string()
    run_age("-r", recipient, "-o", tmp_path / "file.age", tmp_path / "plain")
    assert our_decrypt(tmp_path / "file.age", [identity]) == plaintext


def test_we_use_a_key_generated_by_age_keygen(age_tool: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key_file)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(key_file)], check=True, capture_output=True, text=True
    ).stdout.strip()
    [identity] = parse_identity_file(key_file.read_text())
    assert identity.recipient().to_string() == public

    plaintext = os.urandom(100_000)
    (tmp_path / "plain").write_bytes(plaintext)
    run_age("-r", public, "-o", tmp_path / "from-age.age", tmp_path / "plain")
    assert our_decrypt(tmp_path / "from-age.age", [identity]) == plaintext

    ours = our_encrypt(plaintext, [X25519Recipient.from_string(public)], tmp_path / "ours.age")
    assert age_decrypt(key_file, ours) == plaintext


def test_each_of_two_recipients_decrypts_our_file_with_age(age_tool: str, tmp_path: Path) -> None:
    plaintext = os.urandom(200_000)
    alice, bob = X25519Identity.generate(), X25519Identity.generate()
    encrypted = our_encrypt(plaintext, [alice.recipient(), bob.recipient()], tmp_path / "f.age")
    for name, identity in (("alice", alice), ("bob", bob)):
        key_file = write_identity_file(tmp_path / f"{name}.txt", identity)
        assert age_decrypt(key_file, encrypted) == plaintext


def test_each_of_two_recipients_decrypts_an_age_file_with_us(age_tool: str, tmp_path: Path) -> None:
    plaintext = os.urandom(200_000)
    (tmp_path / "plain").write_bytes(plaintext)
    alice, bob = X25519Identity.generate(), X25519Identity.generate()
    run_age(
        "-r", alice.recipient().to_string(),
        "-r", bob.recipient().to_string(),
        "-o", tmp_path / "f.age", tmp_path / "plain",
    )  # fmt: skip
    assert len(read_header(io.BytesIO((tmp_path / "f.age").read_bytes())).stanzas) == 2
    assert our_decrypt(tmp_path / "f.age", [alice]) == plaintext
    assert our_decrypt(tmp_path / "f.age", [bob]) == plaintext


def test_armored_files_interoperate_both_ways(age_tool: str, tmp_path: Path) -> None:
    plaintext = os.urandom(70_000)
    (tmp_path / "plain").write_bytes(plaintext)
    identity = X25519Identity.generate()
    run_age(
        "-a", "-r", identity.recipient().to_string(), "-o", tmp_path / "a.age", tmp_path / "plain"
    )
    assert our_decrypt(tmp_path / "a.age", [identity]) == plaintext

    with (tmp_path / "ours.age").open("wb") as dst:
        encrypt(io.BytesIO(plaintext), dst, [identity.recipient()], armor=True)
    key_file = write_identity_file(tmp_path / "key.txt", identity)
    assert age_decrypt(key_file, tmp_path / "ours.age") == plaintext


def run_age_with_passphrase(args: list[str | Path], passphrase: str, timeout: float = 60) -> None:
    """Run ``age`` on a pseudo-terminal, answering each passphrase prompt.

    age reads passphrases only from a terminal, so the child gets a pty as its
    controlling terminal and we type the passphrase whenever a prompt appears.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["age", *map(str, args)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(slave)
    transcript = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], 0.2)
            if not readable:
                continue
            try:
                transcript += os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if transcript.lower().count(b"passphrase") > answered:
                answered += 1
                os.write(master, passphrase.encode() + b"\n")
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert process.returncode == 0, transcript.decode(errors="replace")


def test_age_decrypts_our_passphrase_file(age_tool: str, tmp_path: Path) -> None:
    plaintext = os.urandom(80_000)
    with (tmp_path / "p.age").open("wb") as dst:
        encrypt(io.BytesIO(plaintext), dst, [ScryptRecipient("correct horse", work_factor=10)])
    run_age_with_passphrase(["-d", "-o", tmp_path / "out", tmp_path / "p.age"], "correct horse")
    assert (tmp_path / "out").read_bytes() == plaintext


def test_we_decrypt_an_age_passphrase_file(age_tool: str, tmp_path: Path) -> None:
    plaintext = os.urandom(80_000)
    (tmp_path / "plain").write_bytes(plaintext)
    run_age_with_passphrase(["-p", "-o", tmp_path / "p.age", tmp_path / "plain"], "battery staple")
    [stanza] = read_header(io.BytesIO((tmp_path / "p.age").read_bytes())).stanzas
    assert stanza.type == "scrypt"
    out = io.BytesIO()
    with (tmp_path / "p.age").open("rb") as src:
        decrypt(src, out, [ScryptIdentity("battery staple")])
    assert out.getvalue() == plaintext


def test_age_decrypts_a_file_we_rewrapped(age_tool: str, tmp_path: Path) -> None:
    plaintext = os.urandom(300_000)
    (tmp_path / "plain").write_bytes(plaintext)
    owner, escrow_agent = X25519Identity.generate(), X25519Identity.generate()
    # The original comes from age itself, so the reused payload is age's own.
    run_age("-r", owner.recipient().to_string(), "-o", tmp_path / "orig.age", tmp_path / "plain")
    original = (tmp_path / "orig.age").read_bytes()
    with (tmp_path / "orig.age").open("rb") as src:
        new_header, offset = rewrap_header(src, [owner], [escrow_agent.recipient()])
    (tmp_path / "rewrapped.age").write_bytes(new_header + original[offset:])

    key_file = write_identity_file(tmp_path / "agent.txt", escrow_agent)
    assert age_decrypt(key_file, tmp_path / "rewrapped.age") == plaintext


def test_age_decrypts_the_output_of_streaming_rewrap(age_tool: str, tmp_path: Path) -> None:
    plaintext = os.urandom(150_000)
    owner, escrow_agent = X25519Identity.generate(), X25519Identity.generate()
    original = our_encrypt(plaintext, [owner.recipient()], tmp_path / "orig.age")
    with original.open("rb") as src, (tmp_path / "rewrapped.age").open("wb") as dst:
        rewrap(src, dst, [owner], [escrow_agent.recipient()])
    key_file = write_identity_file(tmp_path / "agent.txt", escrow_agent)
    assert age_decrypt(key_file, tmp_path / "rewrapped.age") == plaintext
