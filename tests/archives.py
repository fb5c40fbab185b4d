"""Small archives built by the tests themselves, good and hostile."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile

PROJECT = {
    "project/README.md": b"# Ledger Pro\nBuild with make.\n",
    "project/LICENSE": b"Proprietary; held in escrow.\n",
    "project/Makefile": b"all:\n\tcc -o ledger src/main.c\n",
    "project/poetry.lock": b"# lock\n",
    "project/src/main.c": b"int main(void) { return 0; }\n",
}


def tar_gz(files: dict[str, bytes] | None = None) -> bytes:
    """The same bytes for the same files, every time (gzip's timestamp is fixed)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        compressed.write(tar(files))
    return buffer.getvalue()


def tar(files: dict[str, bytes] | None = None) -> bytes:
    """An uncompressed tar of ``files`` (the test project by default)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in (files or PROJECT).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def zip_bytes(files: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in (files or PROJECT).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def tar_with_member(info: tarfile.TarInfo, content: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("project/README.md"), io.BytesIO(b""))
        info.size = len(content) if info.isfile() else 0
        archive.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return buffer.getvalue()


def symlink_out() -> bytes:
    link = tarfile.TarInfo("project/passwd")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../etc/passwd"
    return tar_with_member(link)


def traversal() -> bytes:
    return tar_with_member(tarfile.TarInfo("../../evil.sh"), b"rm -rf /\n")


def fifo() -> bytes:
    member = tarfile.TarInfo("project/pipe")
    member.type = tarfile.FIFOTYPE
    return tar_with_member(member)


def empty_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w"):
        pass
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
