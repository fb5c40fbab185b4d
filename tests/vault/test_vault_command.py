"""``manage.py vault encrypt|decrypt|rewrap``, run as the operator runs them.

Each test starts the real command in a subprocess (no database involved) and
checks what the operator sees: the bytes that come out, the reference ``age``
tool agreeing with them, one-line reasons on stderr, and no output file left
behind by a failed run. Subprocesses get their own session, hence no
controlling terminal, so a passphrase prompt can never hang the suite.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHUNK = 64 * 1024
SEALED_CHUNK = CHUNK + 16
# Three full chunks and a partial one, so failures can happen after output began.
PLAINTEXT = os.urandom(3 * CHUNK + 1234)


@dataclass(frozen=True)
class Key:
    identity_file: Path
    recipient: str


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("age") is None or shutil.which("age-keygen") is None:
        pytest.fail("the `age` and `age-keygen` tools are required (Debian package `age`)")
    return tmp_path_factory.mktemp("vault-command")


def make_key(directory: Path, name: str) -> Key:
    identity_file = directory / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", identity_file], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", identity_file], check=True, capture_output=True, text=True
    ).stdout.strip()
    return Key(identity_file, recipient)


@pytest.fixture(scope="module")
def alice(workdir: Path) -> Key:
    return make_key(workdir, "alice")


@pytest.fixture(scope="module")
def bob(workdir: Path) -> Key:
    return make_key(workdir, "bob")


@pytest.fixture(scope="module")
def age_file(workdir: Path, alice: Key) -> Path:
    """PLAINTEXT encrypted to alice by the reference age tool."""
    source = workdir / "plain.bin"
    source.write_bytes(PLAINTEXT)
    target = workdir / "plain.age"
    subprocess.run(["age", "-r", alice.recipient, "-o", target, source], check=True)
    return target


@pytest.fixture(scope="module", autouse=True)
def _var_dir_outside_the_repo(workdir: Path) -> Iterator[None]:
    # manage.py keeps a local secret key under ESCROW_VAR_DIR; keep it out of the checkout.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ESCROW_VAR_DIR", str(workdir / "var"))
        yield


def command_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "AGE_PASSPHRASE"}
    env.update(extra)
    return env


def vault(*args: str | Path, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "manage.py", "vault", *map(str, args)],
        cwd=REPO,
        env=command_env(**env),
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )


def age_decrypt(key: Key, path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["age", "-d", "-i", key.identity_file, path], capture_output=True, timeout=60, check=False
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[bytes], prefix: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert stderr.startswith(prefix), stderr
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert "Traceback" not in stderr


def header_and_payload(data: bytes) -> tuple[bytes, bytes]:
    end = data.index(b"\n", data.index(b"\n--- ") + 1) + 1
    return data[:end], data[end:]


# Interoperability with the age tool


def test_age_decrypts_a_file_vault_encrypted(tmp_path: Path, age_file: Path, alice: Key) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(PLAINTEXT)
    result = vault("encrypt", "-r", alice.recipient, "-o", tmp_path / "out.age", source)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" and result.stderr == b""
    assert age_decrypt(alice, tmp_path / "out.age").stdout == PLAINTEXT


def test_vault_decrypts_a_file_age_encrypted(tmp_path: Path, age_file: Path, alice: Key) -> None:
    result = vault("decrypt", "-i", alice.identity_file, "-o", tmp_path / "out.bin", age_file)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.bin").read_bytes() == PLAINTEXT


def test_rewrap_lets_only_the_new_key_open_the_file_and_keeps_the_payload(
    tmp_path: Path, age_file: Path, alice: Key, bob: Key
) -> None:
    rewrapped = tmp_path / "bob.age"
    result = vault(
        "rewrap", "-i", alice.identity_file, "-r", bob.recipient, "-o", rewrapped, age_file
    )
    assert result.returncode == 0, result.stderr
    assert age_decrypt(bob, rewrapped).stdout == PLAINTEXT
    assert age_decrypt(alice, rewrapped).returncode != 0
    old_header, old_payload = header_and_payload(age_file.read_bytes())
    new_header, new_payload = header_and_payload(rewrapped.read_bytes())
    assert new_payload == old_payload
    assert new_header != old_header


def test_a_recipients_file_with_comments_encrypts_to_every_listed_key(
    tmp_path: Path, alice: Key, bob: Key
) -> None:
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# escrow agents\n{alice.recipient}\n\n# backup\n{bob.recipient}\n")
    result = vault("encrypt", "-R", recipients, "-o", tmp_path / "out.age", stdin=PLAINTEXT)
    assert result.returncode == 0, result.stderr
    assert age_decrypt(alice, tmp_path / "out.age").stdout == PLAINTEXT
    assert age_decrypt(bob, tmp_path / "out.age").stdout == PLAINTEXT


def test_armored_output_is_text_that_age_decrypts(tmp_path: Path, alice: Key) -> None:
    result = vault("encrypt", "-a", "-r", alice.recipient, stdin=PLAINTEXT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    (tmp_path / "out.age").write_bytes(result.stdout)
    assert age_decrypt(alice, tmp_path / "out.age").stdout == PLAINTEXT


# Streams and output files


def test_encrypt_then_decrypt_through_stdin_and_stdout(alice: Key) -> None:
    encrypted = vault("encrypt", "-r", alice.recipient, stdin=PLAINTEXT)
    assert encrypted.returncode == 0, encrypted.stderr
    assert encrypted.stdout.startswith(b"age-encryption.org/v1\n")
    decrypted = vault("decrypt", "-i", alice.identity_file, "-", stdin=encrypted.stdout)
    assert decrypted.returncode == 0, decrypted.stderr
    assert decrypted.stdout == PLAINTEXT


def test_it_refuses_to_overwrite_an_existing_output_without_force(
    tmp_path: Path, age_file: Path, alice: Key
) -> None:
    existing = tmp_path / "out.bin"
    existing.write_bytes(b"keep me")
    refused = vault("decrypt", "-i", alice.identity_file, "-o", existing, age_file)
    assert_one_line_failure(refused, "vault: output ")
    assert "already exists" in refused.stderr.decode()
    assert existing.read_bytes() == b"keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.bin"]

    forced = vault("decrypt", "-i", alice.identity_file, "-o", existing, "--force", age_file)
    assert forced.returncode == 0, forced.stderr
    assert existing.read_bytes() == PLAINTEXT


def test_it_refuses_to_write_binary_ciphertext_to_a_terminal(alice: Key) -> None:
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "manage.py", "vault", "encrypt", "-r", alice.recipient],
            cwd=REPO,
            env=command_env(),
            input=b"secret",
            stdout=terminal,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert_one_line_failure(result, "vault: refusing to write binary age data to a terminal")


# Failed decryption: a one-line reason and no output file


def corrupt_header_syntax(data: bytes) -> bytes:
    # Two spaces make an empty stanza argument, which the grammar forbids.
    return data.replace(b"-> X25519 ", b"-> X25519  ", 1)


def corrupt_header_mac(data: bytes) -> bytes:
    mac_start = data.index(b"\n--- ") + len(b"\n--- ")
    # The first MAC character carries no padding bits, so any change stays valid base64.
    replacement = b"B" if data[mac_start : mac_start + 1] == b"A" else b"A"
    return data[:mac_start] + replacement + data[mac_start + 1 :]


def flip_payload_byte(data: bytes) -> bytes:
    header, payload = header_and_payload(data)
    # Inside the third chunk, so two authentic chunks were already released.
    position = 16 + 2 * SEALED_CHUNK + 100
    flipped = bytes([payload[position] ^ 0x01])
    return header + payload[:position] + flipped + payload[position + 1 :]


def truncate_at_chunk_boundary(data: bytes) -> bytes:
    header, payload = header_and_payload(data)
    # Two whole, authentic chunks and no final one: the output would look plausible.
    return header + payload[: 16 + 2 * SEALED_CHUNK]


FAILURES = [
    ("wrong-identity", None, "vault: no identity matched"),
    ("malformed-header", corrupt_header_syntax, "vault: header is malformed: "),
    ("header-mac", corrupt_header_mac, "vault: header MAC mismatch"),
    ("flipped-payload-byte", flip_payload_byte, "vault: payload failed authentication"),
    ("truncated", truncate_at_chunk_boundary, "vault: payload failed authentication"),
]


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [(corrupt, reason) for _, corrupt, reason in FAILURES],
    ids=[name for name, _, _ in FAILURES],
)
def test_failed_decryption_names_the_reason_and_leaves_no_output_file(
    tmp_path: Path,
    age_file: Path,
    alice: Key,
    bob: Key,
    corrupt: Callable[[bytes], bytes] | None,
    reason: str,
) -> None:
    source = tmp_path / "in.age"
    data = age_file.read_bytes()
    source.write_bytes(data if corrupt is None else corrupt(data))
    key = bob if corrupt is None else alice
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    result = vault("decrypt", "-i", key.identity_file, "-o", out_dir / "plain.bin", source)

    assert_one_line_failure(result, reason)
    assert list(out_dir.iterdir()) == []  # neither the output nor a temporary file


def test_failed_decryption_to_stdout_writes_only_authenticated_chunks(
    tmp_path: Path, age_file: Path, alice: Key
) -> None:
    corrupted = flip_payload_byte(age_file.read_bytes())
    result = vault("decrypt", "-i", alice.identity_file, stdin=corrupted)
    assert_one_line_failure(result, "vault: payload failed authentication")
    assert result.stdout == PLAINTEXT[: 2 * CHUNK]


# Bad input from the operator


def test_a_malformed_recipient_is_refused_before_any_output(tmp_path: Path) -> None:
    result = vault("encrypt", "-r", "age1notakey", "-o", tmp_path / "out.age", stdin=PLAINTEXT)
    assert_one_line_failure(result, "vault: recipient 'age1notakey': malformed age recipient")
    assert list(tmp_path.iterdir()) == []


def test_encrypt_without_recipients_is_refused(tmp_path: Path) -> None:
    result = vault("encrypt", "-o", tmp_path / "out.age", stdin=PLAINTEXT)
    assert_one_line_failure(result, "vault: no recipients")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_identity_file_is_named(tmp_path: Path, age_file: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    result = vault("decrypt", "-i", missing, "-o", tmp_path / "out.bin", age_file)
    assert_one_line_failure(result, f"vault: cannot read identity file '{missing}'")
    assert list(tmp_path.iterdir()) == []


def test_an_identity_file_without_keys_is_refused(tmp_path: Path, age_file: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# created: never\n# public key: none\n")
    result = vault("decrypt", "-i", empty, age_file)
    assert_one_line_failure(result, f"vault: {empty}: identity file contains no identities")


def test_a_missing_input_file_leaves_no_output(tmp_path: Path, alice: Key) -> None:
    out = tmp_path / "out.age"
    result = vault("encrypt", "-r", alice.recipient, "-o", out, tmp_path / "missing.bin")
    assert_one_line_failure(result, "vault: cannot open input ")
    assert list(tmp_path.iterdir()) == []


# Passphrases


def test_passphrase_from_the_environment_round_trips(tmp_path: Path) -> None:
    encrypted = tmp_path / "secret.age"
    result = vault("encrypt", "-p", "-o", encrypted, stdin=PLAINTEXT, AGE_PASSPHRASE="hunter2 x")
    assert result.returncode == 0, result.stderr
    assert b"\n-> scrypt " in encrypted.read_bytes()
    decrypted = vault("decrypt", "-p", encrypted, AGE_PASSPHRASE="hunter2 x")
    assert decrypted.returncode == 0, decrypted.stderr
    assert decrypted.stdout == PLAINTEXT


def test_passphrase_without_terminal_or_environment_is_refused(tmp_path: Path) -> None:
    result = vault("encrypt", "-p", "-o", tmp_path / "out.age", stdin=PLAINTEXT)
    assert_one_line_failure(result, "vault: a passphrase is needed but there is no terminal")
    assert list(tmp_path.iterdir()) == []


# Progress


@pytest.fixture(scope="module")
def large_input(workdir: Path) -> Path:
    path = workdir / "large.bin"
    path.write_bytes(os.urandom(20 * 1024 * 1024))
    return path


def test_progress_is_shown_when_stderr_is_a_terminal(
    tmp_path: Path, large_input: Path, alice: Key
) -> None:
    controller, terminal = pty.openpty()
    arguments = ["encrypt", "-r", alice.recipient, "-o", str(tmp_path / "out.age"), large_input]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "vault", *map(str, arguments)],
        cwd=REPO,
        env=command_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    transcript = b""
    try:
        while True:
            try:
                data = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            transcript += data
    finally:
        os.close(controller)
        process.wait(timeout=60)
    assert process.returncode == 0, transcript
    assert b"MB/s" in transcript
    assert b"21.0 MB / 21.0 MB (100%)" in transcript


def test_no_progress_when_stderr_is_a_pipe(tmp_path: Path, large_input: Path, alice: Key) -> None:
    result = vault("encrypt", "-r", alice.recipient, "-o", tmp_path / "out.age", large_input)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
