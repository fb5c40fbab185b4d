"""The threaded paths: payloads written to real files by a writer thread, and ``-o`` files.

When the destination is an operating-system file, ``vault.age`` hands the
output to a writer thread in blocks of several chunks, and ``vault ... -o``
flushes the file in the background while it is written. These tests use real
files, pipes, the real ``age`` tool and the real command, with inputs that
span several blocks, so every failure happens after the thread has started.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vault.age import (
    PayloadError,
    X25519Identity,
    decrypt,
    encrypt,
    read_header,
)
from vault.age.stream import _BLOCK_CHUNKS, CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, NONCE_SIZE

REPO = Path(__file__).resolve().parents[2]
BLOCK = _BLOCK_CHUNKS * CHUNK_SIZE
# Ten chunks and a bit: two full writer blocks, then a partial one.
PLAINTEXT = os.urandom(2 * BLOCK + 2 * CHUNK_SIZE + 777)


@pytest.fixture(scope="module")
def identity() -> X25519Identity:
    return X25519Identity.generate()


@pytest.fixture(scope="module")
def age_tool() -> str:
    path = shutil.which("age")
    if path is None:
        pytest.fail("the `age` tool is required (Debian package `age`)")
    return path


@pytest.fixture(scope="module")
def identity_file(tmp_path_factory: pytest.TempPathFactory, identity: X25519Identity) -> Path:
    path = tmp_path_factory.mktemp("keys") / "key.txt"
    path.write_text(identity.to_string() + "\n")
    return path


def encrypt_file(plaintext: bytes, identity: X25519Identity, directory: Path) -> Path:
    source, target = directory / "plain", directory / "plain.age"
    source.write_bytes(plaintext)
    with source.open("rb") as src, target.open("wb") as dst:
        assert encrypt(src, dst, [identity.recipient()]) == len(plaintext)
    return target


def decrypt_file(encrypted: Path, identity: X25519Identity, directory: Path) -> Path:
    target = directory / "plain.out"
    with encrypted.open("rb") as src, target.open("wb") as dst:
        decrypt(src, dst, [identity])
    return target


def payload_offset(encrypted: Path) -> int:
    with encrypted.open("rb") as src:
        return read_header(src).size + NONCE_SIZE


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK_SIZE, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 2 * BLOCK + CHUNK_SIZE + 5],
)
def test_files_roundtrip_and_age_agrees_around_block_boundaries(
    tmp_path: Path, identity: X25519Identity, identity_file: Path, age_tool: str, size: int
) -> None:
    plaintext = os.urandom(size)
    encrypted = encrypt_file(plaintext, identity, tmp_path)
    assert decrypt_file(encrypted, identity, tmp_path).read_bytes() == plaintext
    by_age = subprocess.run(
        [age_tool, "-d", "-i", identity_file, encrypted], capture_output=True, check=True
    )
    assert by_age.stdout == plaintext


def test_age_encrypted_files_decrypt_to_a_file(
    tmp_path: Path, identity: X25519Identity, age_tool: str
) -> None:
    source, encrypted = tmp_path / "plain", tmp_path / "plain.age"
    source.write_bytes(PLAINTEXT)
    recipient = str(identity.recipient())
    subprocess.run([age_tool, "-r", recipient, "-o", encrypted, source], check=True)
    assert decrypt_file(encrypted, identity, tmp_path).read_bytes() == PLAINTEXT


class ThreadRecordingFile(io.FileIO):
    """A real file that notes which threads wrote to it."""

    writers: set[str]

    def write(self, data: object, /) -> int:
        self.writers.add(threading.current_thread().name)
        return super().write(data)  # type: ignore[arg-type]


def test_payloads_bound_for_files_are_written_by_another_thread(
    tmp_path: Path, identity: X25519Identity
) -> None:
    """The block tests below exercise the writer thread, not the direct path."""
    target = ThreadRecordingFile(tmp_path / "plain.age", "wb")
    target.writers = set()
    with target:
        encrypt(io.BytesIO(PLAINTEXT), target, [identity.recipient()])
    assert target.writers - {threading.current_thread().name}
    assert decrypt_file(tmp_path / "plain.age", identity, tmp_path).read_bytes() == PLAINTEXT


def test_a_forged_chunk_in_a_later_block_releases_exactly_the_chunks_before_it(
    tmp_path: Path, identity: X25519Identity
) -> None:
    encrypted = encrypt_file(PLAINTEXT, identity, tmp_path)
    forged_chunk = _BLOCK_CHUNKS + 2  # inside the second writer block
    data = bytearray(encrypted.read_bytes())
    data[payload_offset(encrypted) + forged_chunk * ENCRYPTED_CHUNK_SIZE + 100] ^= 0x01
    encrypted.write_bytes(data)
    output = tmp_path / "plain.out"
    with (
        encrypted.open("rb") as src,
        output.open("wb") as dst,
        pytest.raises(PayloadError, match=f"chunk {forged_chunk} failed"),
    ):
        decrypt(src, dst, [identity])
    assert output.read_bytes() == PLAINTEXT[: forged_chunk * CHUNK_SIZE]


def test_a_file_cut_at_a_block_boundary_releases_the_verified_blocks(
    tmp_path: Path, identity: X25519Identity
) -> None:
    encrypted = encrypt_file(PLAINTEXT, identity, tmp_path)
    cut = payload_offset(encrypted) + 2 * _BLOCK_CHUNKS * ENCRYPTED_CHUNK_SIZE
    encrypted.write_bytes(encrypted.read_bytes()[:cut])
    output = tmp_path / "plain.out"
    with (
        encrypted.open("rb") as src,
        output.open("wb") as dst,
        pytest.raises(PayloadError, match="truncated"),
    ):
        decrypt(src, dst, [identity])
    # The last chunk before the cut is authentic but not final: it is released,
    # then the missing end is reported.
    assert output.read_bytes() == PLAINTEXT[: 2 * BLOCK]


def test_a_write_error_in_the_writer_thread_reaches_the_caller(identity: X25519Identity) -> None:
    threads_before = threading.active_count()
    reading_end, writing_end = os.pipe()
    os.close(reading_end)
    dst = open(writing_end, "wb")  # noqa: SIM115 - closing it fails too, see below
    with pytest.raises(BrokenPipeError):
        encrypt(io.BytesIO(PLAINTEXT), dst, [identity.recipient()])
    assert threading.active_count() == threads_before
    # The header is still buffered; closing tries once more to write it.
    with pytest.raises(BrokenPipeError):
        dst.close()


def vault(*args: str | Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    environment = {key: value for key, value in os.environ.items() if key != "AGE_PASSPHRASE"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "vault", *map(str, args)],
        cwd=REPO,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )


def test_output_file_reports_its_fsync_time_only_when_asked(
    tmp_path: Path, identity: X25519Identity, identity_file: Path
) -> None:
    source = tmp_path / "plain"
    source.write_bytes(PLAINTEXT)
    recipient = str(identity.recipient())
    env = {"ESCROW_VAR_DIR": str(tmp_path / "var")}
    quiet = vault("encrypt", "-r", recipient, "-o", tmp_path / "quiet.age", source, **env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == b""
    told = vault(
        "encrypt", "-r", recipient, "-o", tmp_path / "told.age", source,
        VAULT_REPORT_FSYNC="1", **env,
    )  # fmt: skip
    assert told.returncode == 0, told.stderr
    assert told.stderr.startswith(b"vault: final fsync and rename took "), told.stderr
    decrypted = vault("decrypt", "-i", identity_file, tmp_path / "told.age", **env)
    assert decrypted.stdout == PLAINTEXT


def test_a_forged_file_leaves_no_output_file(
    tmp_path: Path, identity: X25519Identity, identity_file: Path
) -> None:
    encrypted = encrypt_file(PLAINTEXT, identity, tmp_path)
    data = bytearray(encrypted.read_bytes())
    data[-5] ^= 0x01  # in the last chunk, after two blocks were written
    encrypted.write_bytes(data)
    output = tmp_path / "out" / "plain"
    output.parent.mkdir()
    result = vault(
        "decrypt", "-i", identity_file, "-o", output, encrypted,
        ESCROW_VAR_DIR=str(tmp_path / "var"),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(b"vault: payload failed authentication"), result.stderr
    assert list(output.parent.iterdir()) == []
