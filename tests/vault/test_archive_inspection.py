"""Archive inspection: happy paths in every format, and one hostile archive
(built here, in tmp_path) per rejection code."""

from __future__ import annotations

import hashlib
import io
import random
import stat
import tarfile
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest

from vault.archive import ArchiveLimits, ArchiveRejected, ArchiveReport, inspect_archive

LIMITS = ArchiveLimits()
MiB = 1024 * 1024
CONTENT = {
    "product/README.md": b"# Product\n",
    "product/src/main.c": random.Random(1).randbytes(70_000),
    "product/src/empty.h": b"",
}

TarEntry = tuple[tarfile.TarInfo, bytes | None]


def tar_file(name: str, data: bytes = b"data") -> TarEntry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name: str, kind: bytes, linkname: str = "") -> TarEntry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def write_tar(path: Path, entries: list[TarEntry], mode: str = "w") -> Path:
    # GNU format writes names as raw bytes, so tests can plant undecodable ones.
    with tarfile.open(
        path, mode, format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:  # type: ignore[call-overload]
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def write_zip(
    path: Path,
    entries: list[tuple[str | zipfile.ZipInfo, bytes]],
    method: int = zipfile.ZIP_DEFLATED,
) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicates we plant
        with zipfile.ZipFile(path, "w", compression=method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return path


def zip_with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def patch_zip_headers(path: Path, *, local_offset: int, central_offset: int, value: bytes) -> None:
    """Overwrite one field in every member's local and central header."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local_headers = [info.header_offset for info in archive.infolist()]
    central_headers = [i for i in range(len(data)) if data[i : i + 4] == b"PK\x01\x02"]
    for start in local_headers:
        data[start + local_offset : start + local_offset + len(value)] = value
    for start in central_headers:
        data[start + central_offset : start + central_offset + len(value)] = value
    path.write_bytes(bytes(data))


def rejection(path: Path, limits: ArchiveLimits = LIMITS) -> ArchiveRejected:
    with pytest.raises(ArchiveRejected) as caught:
        inspect_archive(path, limits=limits)
    return caught.value


def assert_report_matches(report: ArchiveReport, path: Path, content: dict[str, bytes]) -> None:
    assert report.size == path.stat().st_size
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    files = {m.path: (m.size, m.sha256) for m in report.members if m.kind == "file"}
    assert files == {p: (len(d), hashlib.sha256(d).hexdigest()) for p, d in content.items()}
    assert [m.path for m in report.members] == sorted(m.path for m in report.members)


# --- happy paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected_format"),
    [("w", "tar"), ("w:gz", "tar+gzip"), ("w:xz", "tar+xz"), ("w:bz2", "tar+bzip2")],
)
def test_it_lists_and_hashes_every_tar_member(
    tmp_path: Path, mode: str, expected_format: str
) -> None:
    entries = [tar_special("product", tarfile.DIRTYPE)]
    entries += [tar_file(name, data) for name, data in CONTENT.items()]
    entries.append(tar_special("product/src/readme", tarfile.SYMTYPE, "../README.md"))
    path = write_tar(tmp_path / "deposit.bin", entries, mode)

    report = inspect_archive(path, limits=LIMITS)

    assert report.format == expected_format
    assert_report_matches(report, path, CONTENT)
    link = next(m for m in report.members if m.kind == "symlink")
    assert (link.path, link.target) == ("product/src/readme", "../README.md")
    assert next(m for m in report.members if m.path == "product").kind == "dir"


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_it_lists_and_hashes_every_zip_member(tmp_path: Path, method: int) -> None:
    entries: list[tuple[str | zipfile.ZipInfo, bytes]] = [("product/", b"")]
    entries += list(CONTENT.items())
    entries.append((zip_with_mode("product/src/readme", stat.S_IFLNK | 0o777), b"../README.md"))
    path = write_zip(tmp_path / "deposit.zip", entries, method)

    report = inspect_archive(path, limits=LIMITS)

    assert report.format == "zip"
    assert_report_matches(report, path, CONTENT)
    link = next(m for m in report.members if m.kind == "symlink")
    assert (link.path, link.target) == ("product/src/readme", "../README.md")


def test_it_normalises_dot_slash_and_skips_the_root_entry(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_special("./", tarfile.DIRTYPE), tar_file("./a.txt")])
    assert [m.path for m in inspect_archive(path, limits=LIMITS).members] == ["a.txt"]


def test_it_notes_requirements_files_that_pin_every_version(tmp_path: Path) -> None:
    pinned = b"# locked\ndjango==5.2.1 \\\n    --hash=sha256:abc\nrequests==2.32.3\n"
    path = write_zip(
        tmp_path / "a.zip",
        [("requirements.txt", pinned), ("requirements-dev.txt", b"pytest>=8\n")],
    )
    assert inspect_archive(path, limits=LIMITS).pinned_requirements == ("requirements.txt",)


@pytest.mark.parametrize("kind", ["tar+gzip", "zip"])
def test_it_inspects_a_64_mib_member_in_constant_memory(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "big.bin"
    block = random.Random(2).randbytes(MiB)
    with source.open("wb") as out:
        for index in range(64):
            out.write(index.to_bytes(4, "big") + block[4:])
    path = tmp_path / "big.archive"
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.write(source, "big.bin")
    else:
        with tarfile.open(path, "w:gz", compresslevel=1) as tar:
            tar.add(source, "big.bin")

    tracemalloc.start()
    try:
        report = inspect_archive(path, limits=LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert [(m.path, m.size, m.sha256) for m in report.members] == [("big.bin", 64 * MiB, expected)]
    assert peak < 4 * MiB, f"peak traced memory {peak} bytes for a 64 MiB member"


# --- not an archive, damaged ----------------------------------------------------------------


def test_it_rejects_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "deposit.tar.gz"  # the name must not matter
    path.write_bytes(b"\x00\x01" + random.Random(3).randbytes(8192))
    assert rejection(path).code == "not_an_archive"


def test_it_rejects_a_gzipped_file_that_is_not_a_tar(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "notes.tar.gz"
    path.write_bytes(gzip.compress(b"just some notes\n" * 100))
    assert rejection(path).code == "not_an_archive"


def test_it_rejects_zstd_as_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(600))
    assert rejection(path).code == "unsupported_compression"


@pytest.mark.parametrize("mode", ["w:gz", "w:xz", "w:bz2"])
def test_it_rejects_a_truncated_compressed_tar(tmp_path: Path, mode: str) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file(n, d) for n, d in CONTENT.items()], mode)
    path.write_bytes(path.read_bytes()[:-20])
    assert rejection(path).code == "corrupt_archive"


def test_it_rejects_a_gzip_tar_with_a_bad_crc(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tgz", [tar_file(n, d) for n, d in CONTENT.items()], "w:gz")
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # first byte of the CRC-32 in the gzip trailer
    path.write_bytes(bytes(data))
    error = rejection(path)
    assert error.code == "corrupt_archive"


def test_it_rejects_a_plain_tar_cut_at_a_header_boundary(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file("a.txt"), tar_file("b.txt")])
    path.write_bytes(path.read_bytes()[:1024])  # first member only, no end marker
    assert rejection(path).code == "corrupt_archive"


def test_it_rejects_data_hidden_after_the_tar_end_marker(tmp_path: Path) -> None:
    first = write_tar(tmp_path / "first.tar", [tar_file("a.txt")])
    hidden = write_tar(tmp_path / "hidden.tar", [tar_file("hidden.txt")])
    path = tmp_path / "a.tar"
    path.write_bytes(first.read_bytes() + hidden.read_bytes())
    assert rejection(path).code == "corrupt_archive"


def test_it_rejects_a_zip_whose_local_header_names_a_different_file(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", [("aaa.txt", b"x")])
    path.write_bytes(path.read_bytes().replace(b"aaa.txt", b"bbb.txt", 1))
    assert rejection(path).code == "corrupt_archive"


def test_it_rejects_zip_entries_that_share_bytes(tmp_path: Path) -> None:
    entries: list[tuple[str | zipfile.ZipInfo, bytes]] = [("a.txt", b"a" * 100), ("b.txt", b"b")]
    path = write_zip(tmp_path / "a.zip", entries, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # a.txt now claims b.txt's bytes as its own
    data[central + 20 : central + 24] = (200).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    error = rejection(path)
    assert error.code == "corrupt_archive"
    assert "overlap" in error.message


def test_it_rejects_an_unsupported_zip_method(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", [("a.txt", b"x" * 100)])
    patch_zip_headers(path, local_offset=8, central_offset=10, value=(9).to_bytes(2, "little"))
    assert rejection(path).code == "unsupported_compression"


# --- paths and names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil.sh", "a/../../evil.sh", "a/.. /evil.sh"])
def test_it_rejects_path_traversal_in_tar(tmp_path: Path, name: str) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file("ok.txt"), tar_file(name)])
    error = rejection(path)
    assert (error.code, error.member) == ("path_traversal", name)


@pytest.mark.parametrize("name", ["..\\evil.sh", "./../evil.sh", "a\\..\\..\\evil.sh"])
def test_it_rejects_path_traversal_in_zip(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "a.zip", [("ok.txt", b"x"), (name, b"x")])
    assert rejection(path).code == "path_traversal"


@pytest.mark.parametrize("name", ["/etc/cron.d/evil", "C:/Windows/evil.dll"])
def test_it_rejects_absolute_paths_in_tar(tmp_path: Path, name: str) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file(name)])
    assert rejection(path).code == "absolute_path"


@pytest.mark.parametrize("name", ["/etc/evil", "C:\\Windows\\evil.dll", "\\\\server\\share\\x"])
def test_it_rejects_absolute_paths_in_zip(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "a.zip", [(name, b"x")])
    assert rejection(path).code == "absolute_path"


def test_it_rejects_a_non_utf8_name_in_tar(tmp_path: Path) -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    path = write_tar(tmp_path / "a.tar", [tar_file(name)])
    error = rejection(path)
    assert error.code == "bad_member_name"
    assert "caf\\xe9.txt" in error.message


def test_it_rejects_a_non_utf8_name_in_zip(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", [("cafX.txt", b"x")])
    path.write_bytes(path.read_bytes().replace(b"cafX", b"caf\xe9"))
    assert rejection(path).code == "bad_member_name"


@pytest.mark.parametrize("name", ["evil\x1b[2J.txt", "new\nline.txt", "gnp\u202e.exe"])
def test_it_rejects_control_characters_in_tar_names(tmp_path: Path, name: str) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file(name)])
    assert rejection(path).code == "bad_member_name"


def test_it_rejects_a_nul_in_a_zip_name(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", [("aXb.txt", b"x")])
    path.write_bytes(path.read_bytes().replace(b"aXb", b"a\x00b"))
    assert rejection(path).code == "bad_member_name"


@pytest.mark.parametrize("second", ["a.txt", "./a.txt", ".//a.txt", "a.txt/"])
def test_it_rejects_duplicate_member_paths_in_tar(tmp_path: Path, second: str) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file("a.txt", b"good"), tar_file(second, b"evil")])
    error = rejection(path)
    assert (error.code, error.member) == ("duplicate_member", "a.txt")


def test_it_rejects_duplicate_member_paths_in_zip(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", [("a.txt", b"good"), ("a.txt", b"evil")])
    error = rejection(path)
    assert (error.code, error.member) == ("duplicate_member", "a.txt")


# --- links and special members ---------------------------------------------------------------


@pytest.mark.parametrize(
    "links",
    [
        [("sub/link", "../../outside")],
        [("link", "/etc/passwd")],
        [("dot", "."), ("up", "dot/..")],  # only escapes once "dot" is followed
        [("loop1", "loop2"), ("loop2", "loop1")],
    ],
)
def test_it_rejects_symlinks_escaping_in_tar(tmp_path: Path, links: list[tuple[str, str]]) -> None:
    entries = [tar_file("sub/file.txt")]
    entries += [tar_special(name, tarfile.SYMTYPE, target) for name, target in links]
    path = write_tar(tmp_path / "a.tar", entries)
    assert rejection(path).code == "link_escapes"


def test_it_rejects_symlinks_escaping_in_zip(tmp_path: Path) -> None:
    link = zip_with_mode("sub/link", stat.S_IFLNK | 0o777)
    path = write_zip(tmp_path / "a.zip", [("a.txt", b"x"), (link, b"../../etc/passwd")])
    error = rejection(path)
    assert (error.code, error.member) == ("link_escapes", "sub/link")


@pytest.mark.parametrize("target", ["../etc/passwd", "/etc/passwd", "missing.txt", "link"])
def test_it_rejects_hard_links_escaping_in_tar(tmp_path: Path, target: str) -> None:
    entries = [tar_file("a.txt"), tar_special("link", tarfile.SYMTYPE, "a.txt")]
    entries.append(tar_special("hard", tarfile.LNKTYPE, target))
    path = write_tar(tmp_path / "a.tar", entries)
    assert rejection(path).code == "link_escapes"


def test_it_accepts_a_hard_link_to_an_earlier_file(tmp_path: Path) -> None:
    entries = [tar_file("a.txt"), tar_special("b.txt", tarfile.LNKTYPE, "a.txt")]
    report = inspect_archive(write_tar(tmp_path / "a.tar", entries), limits=LIMITS)
    assert [(m.path, m.kind, m.target) for m in report.members][1] == ("b.txt", "hardlink", "a.txt")


def test_it_rejects_a_member_written_through_a_symlink(tmp_path: Path) -> None:
    entries = [tar_special("d", tarfile.SYMTYPE, "."), tar_file("d/x.txt")]
    assert rejection(write_tar(tmp_path / "a.tar", entries)).code == "path_traversal"


@pytest.mark.parametrize(
    "kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.GNUTYPE_SPARSE]
)
def test_it_rejects_device_fifo_and_sparse_members_in_tar(tmp_path: Path, kind: bytes) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file("a.txt"), tar_special("dev", kind)])
    assert rejection(path).code == "special_member"


def test_it_rejects_a_fifo_in_zip(tmp_path: Path) -> None:
    fifo = zip_with_mode("pipe", stat.S_IFIFO | 0o644)
    path = write_zip(tmp_path / "a.zip", [("a.txt", b"x"), (fifo, b"")])
    assert rejection(path).code == "special_member"


def test_it_rejects_an_encrypted_zip_member(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", [("secret.txt", b"x" * 100)])
    patch_zip_headers(path, local_offset=6, central_offset=8, value=b"\x01\x00")
    error = rejection(path)
    assert (error.code, error.member) == ("encrypted_member", "secret.txt")


# --- limits --------------------------------------------------------------------------------


def test_it_rejects_an_archive_over_the_size_limit(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file("a.txt")])
    assert rejection(path, ArchiveLimits(max_archive_bytes=10_239)).code == "too_large_archive"


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_it_rejects_too_many_members(tmp_path: Path, kind: str) -> None:
    names = [f"f{i}.txt" for i in range(4)]
    if kind == "tar":
        path = write_tar(tmp_path / "a.tar", [tar_file(n) for n in names])
    else:
        path = write_zip(tmp_path / "a.zip", [(n, b"x") for n in names])
    assert rejection(path, ArchiveLimits(max_members=3)).code == "too_many_members"
    assert inspect_archive(path, limits=ArchiveLimits(max_members=4)).members


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_it_rejects_too_large_expanded_tar(tmp_path: Path, mode: str) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_file("big.bin", bytes(2 * MiB))], mode)
    limits = ArchiveLimits(max_expanded_bytes=MiB, max_ratio=1e9)
    error = rejection(path, limits)
    assert (error.code, error.member) == ("too_large_expanded", "big.bin")


def test_it_stops_a_zip_bomb_that_declares_small_sizes(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("z", "w") as out:
        for _ in range(64):
            out.write(bytes(MiB))
    # Claim 1000 bytes in both headers; the CRC still describes the real 64 MiB.
    patch_zip_headers(path, local_offset=22, central_offset=24, value=(1000).to_bytes(4, "little"))
    limits = ArchiveLimits(max_expanded_bytes=4 * MiB, max_ratio=1e9)

    error = rejection(path, limits)

    assert (error.code, error.member) == ("too_large_expanded", "z")


@pytest.mark.parametrize("kind", ["tar+gzip", "zip", "zip declaring small sizes"])
def test_it_rejects_an_extreme_expansion_ratio(tmp_path: Path, kind: str) -> None:
    if kind == "tar+gzip":
        path = write_tar(tmp_path / "a.tgz", [tar_file("zeros", bytes(8 * MiB))], "w:gz")
    else:
        path = write_zip(tmp_path / "a.zip", [("zeros", bytes(8 * MiB))])
    if kind == "zip declaring small sizes":
        patch_zip_headers(path, local_offset=22, central_offset=24, value=(1).to_bytes(4, "little"))

    error = rejection(path, ArchiveLimits(max_ratio=100.0))

    assert (error.code, error.member) == ("expansion_ratio", "zeros")
    if kind != "zip declaring small sizes":  # the same archive passes a looser limit
        assert inspect_archive(path, limits=ArchiveLimits(max_ratio=2000.0)).members


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_it_rejects_an_empty_tar(tmp_path: Path, mode: str) -> None:
    path = write_tar(tmp_path / "a.tar", [], mode)
    assert rejection(path).code == "empty_archive"


def test_it_rejects_a_tar_of_directories_only(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", [tar_special("dir", tarfile.DIRTYPE)])
    assert rejection(path).code == "empty_archive"


def test_it_rejects_an_empty_zip(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", [])
    assert rejection(path).code == "empty_archive"
