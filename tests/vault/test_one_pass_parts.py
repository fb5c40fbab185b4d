"""The parts of the one-pass deposit that stand on their own: the age writer that takes its
plaintext piece by piece (checked against the real ``age`` tool) and a local site's
pending object (written with O_DIRECT where the disk allows, visible only on commit)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from vault import age
from vault.age.writer import AgeWriter
from vault.sites import SiteError, StorageSite
from vault.sites_local import LocalPending, LocalSite

AGE = shutil.which("age")


def local_site(root: Path) -> LocalSite:
    site = LocalSite(
        StorageSite(
            name="primary",
            kind="local",
            path=str(root),
            bucket="",
            endpoint_url="",
            region="",
            access_key_id="",
            secret_access_key="",
        )
    )
    site.ensure_ready()
    return site


def everything(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize(
    "size", [0, 1, 65535, 65536, 65537, 2 * 65536, 3 * 65536 + 7, 1024 * 1024 + 1]
)
def test_the_age_writer_makes_files_the_age_tool_opens_whatever_the_pieces(
    size: int, tmp_path: Path
) -> None:
    if AGE is None:
        pytest.fail("the age tool is not installed (make system-deps installs it)")
    identity = age.X25519Identity.generate()
    plaintext = os.urandom(size)
    pieces = random.Random(size)
    out = bytearray()
    writer = AgeWriter(out.extend, [identity.recipient()])
    position = 0
    while position < size:
        step = pieces.choice([1, 100, 65535, 65536, 65537, 300_000])
        writer.write(memoryview(plaintext)[position : position + step])
        position += step
    writer.close()
    assert writer.plaintext_size == size
    (tmp_path / "key.txt").write_text(identity.to_string() + "\n")
    (tmp_path / "file.age").write_bytes(bytes(out))
    opened = subprocess.run(
        [AGE, "-d", "-i", str(tmp_path / "key.txt"), str(tmp_path / "file.age")],
        capture_output=True,
        check=True,
    )
    assert opened.stdout == plaintext
    # And our own reader agrees.
    back = io.BytesIO()
    age.decrypt(io.BytesIO(bytes(out)), back, [identity])
    assert back.getvalue() == plaintext


def test_the_age_writer_refuses_to_write_after_close() -> None:
    writer = AgeWriter(lambda piece: None, [age.X25519Identity.generate().recipient()])
    writer.close()
    writer.close()  # twice is harmless
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"late")


def test_a_pending_object_is_invisible_until_commit_and_exact_after(tmp_path: Path) -> None:
    site = local_site(tmp_path / "site")
    data = os.urandom(3 * LocalPending.BLOCK + 12345)  # both buffers in turn, then a tail
    with site.begin_put("deposits/a/sealed.age") as pending:
        for start in range(0, len(data), 1_000_003):
            pending.write(data[start : start + 1_000_003])
        assert site.stat("deposits/a/sealed.age") is None
        stored = pending.commit(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    assert stored.size == len(data)
    assert (tmp_path / "site/deposits/a/sealed.age").read_bytes() == data
    assert everything(tmp_path / "site") == ["deposits/a/sealed.age"]  # no temporary left
    assert os.stat(tmp_path / "site/deposits/a/sealed.age").st_mode & 0o777 == 0o444


def test_an_aborted_or_abandoned_pending_object_leaves_nothing(tmp_path: Path) -> None:
    site = local_site(tmp_path / "site")
    pending = site.begin_put("deposits/a/sealed.age")
    pending.write(os.urandom(LocalPending.BLOCK + 5))
    pending.abort()
    pending.abort()  # idempotent
    with pytest.raises(SiteError, match="already ended"):
        pending.write(b"more")
    with (
        pytest.raises(RuntimeError, match="the archive was hostile"),
        site.begin_put("deposits/b/sealed.age") as abandoned,
    ):
        abandoned.write(b"x" * 100)
        raise RuntimeError("the archive was hostile")
    assert everything(tmp_path / "site") == []


def test_a_pending_object_with_fewer_bytes_than_promised_is_refused(tmp_path: Path) -> None:
    site = local_site(tmp_path / "site")
    pending = site.begin_put("deposits/a/sealed.age")
    pending.write(b"12345")
    with pytest.raises(SiteError, match="5 bytes were written, not 6 as promised"):
        pending.commit(sha256=hashlib.sha256(b"123456").hexdigest(), size=6)
    assert everything(tmp_path / "site") == []


def test_a_pending_object_never_replaces_a_stored_one(tmp_path: Path) -> None:
    site = local_site(tmp_path / "site")
    site.put("deposits/a/sealed.age", io.BytesIO(b"old"), sha256=_sha(b"old"), size=3)
    pending = site.begin_put("deposits/a/sealed.age")
    pending.write(b"new")
    with pytest.raises(SiteError, match="is taken; a one-pass write never replaces"):
        pending.commit(sha256=_sha(b"new"), size=3)
    assert (tmp_path / "site/deposits/a/sealed.age").read_bytes() == b"old"
    assert everything(tmp_path / "site") == ["deposits/a/sealed.age"]


def test_a_hostile_key_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    site = local_site(tmp_path / "site")
    for key in ("../outside", "/etc/passwd", ".hidden", "a/../../b", ""):
        with pytest.raises(ValueError):
            site.begin_put(key)
    assert everything(tmp_path) == []


def test_a_full_disk_mid_write_is_a_site_error_and_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    root = tmp_path / "small"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(root)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        site = local_site(root)  # tmpfs has no O_DIRECT: the ordinary writes are used
        pending = site.begin_put("deposits/a/sealed.age")
        blocks = 8 * 1024 * 1024 // LocalPending.BLOCK  # 8 MiB for a 6 MiB disk
        with pytest.raises(SiteError, match="No space left on device") as refused:
            for _ in range(blocks):
                pending.write(os.urandom(LocalPending.BLOCK))
            pending.commit(sha256="0" * 64, size=blocks * LocalPending.BLOCK)
        assert refused.value.transient  # a full disk can be freed: the upload again works
        assert everything(root) == []
    finally:
        subprocess.run(["umount", str(root)], check=True)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
