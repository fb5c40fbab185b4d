"""vault.direct_io: large files written past the page cache, byte for byte, and the
intake copy of a deposit written through it."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from vault.age import X25519Identity
from vault.archive_checks import ArchiveLimits
from vault.direct_io import DirectWriter
from vault.one_pass import seal_in_one_pass
from vault.sites_local import LocalSite

BLOCK = DirectWriter.BLOCK
SIZES = [0, 1, 4095, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345]


def write_in_uneven_pieces(writer: DirectWriter, data: bytes) -> None:
    view = memoryview(data)
    step = 1
    while view:
        writer.write(view[:step])
        view = view[step:]
        step = step * 3 + 7  # 1, 10, 37, ... crossing every buffer boundary


@pytest.mark.parametrize("size", SIZES)
def test_every_size_arrives_byte_for_byte(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "out"
    writer = DirectWriter.open(path, os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_in_uneven_pieces(writer, data)
        assert writer.finish() == size
    finally:
        writer.close()
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o600


def _takes_o_direct(folder: Path) -> bool:
    probe = folder / f"probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
        return True
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT on this platform")
@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_o_direct_is_used_exactly_where_the_filesystem_takes_it(tmp_path: Path, where: str) -> None:
    """A disk takes O_DIRECT; tmpfs does on Linux 6.6 and later, not before. Either way
    the bytes arrive whole, the last partial block written without it."""
    folder = tmp_path
    if where == "tmpfs":
        folder = Path("/dev/shm") / f"direct-io-test-{os.getpid()}"
        if not folder.parent.is_dir() or not os.access(folder.parent, os.W_OK):
            pytest.skip("no writable tmpfs at /dev/shm")
        folder.mkdir()
    try:
        takes_it = _takes_o_direct(folder)
        path = folder / "out"
        data = os.urandom(2 * BLOCK + 3)
        writer = DirectWriter.open(path, os.O_CREAT | os.O_EXCL)
        assert writer.direct is takes_it
        write_in_uneven_pieces(writer, data)
        assert writer.finish() == len(data)
        writer.close()
        assert path.read_bytes() == data
    finally:
        if where == "tmpfs":
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        DirectWriter.open(path, os.O_CREAT | os.O_EXCL)
    assert path.read_bytes() == b"keep me"


def test_a_closed_writer_refuses_more_and_closing_twice_is_harmless(tmp_path: Path) -> None:
    writer = DirectWriter.open(tmp_path / "out", os.O_CREAT | os.O_EXCL)
    writer.write(b"abc")
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")


def test_the_intake_copy_of_a_multi_block_tar_is_the_archive_byte_for_byte(
    tmp_path: Path,
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for index, size in enumerate((3 * BLOCK + 777, 12345, 0, BLOCK)):
            info = tarfile.TarInfo(f"project/file-{index}.bin")
            info.size = size
            archive.addfile(info, io.BytesIO(os.urandom(size)))
    data = buffer.getvalue()
    site = LocalSite({"name": "primary", "kind": "local", "path": str(tmp_path / "site")})
    site.ensure_ready()
    copy = tmp_path / "deposit-1.lease.verify"
    body = io.BufferedReader(io.BytesIO(data), buffer_size=1000)  # type: ignore[arg-type]
    sealed = seal_in_one_pass(
        body,
        recipients=[X25519Identity.generate().recipient()],
        pending=site.begin_put("deposits/p/1/sealed.age"),
        limits=ArchiveLimits(),
        claimed_sha256=hashlib.sha256(data).hexdigest(),
        spool=tmp_path / "deposit-1.lease.plain",
        copy=copy,
    )
    assert sealed.copy == copy and sealed.copy_problem == ""
    assert copy.read_bytes() == data
    assert copy.stat().st_mode & 0o777 == 0o600
