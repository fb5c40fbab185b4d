"""Every archive-inspection test again, through the one-pass pipeline.

The tests of tests/vault/test_archive_inspection.py are collected here a second time,
with the ``inspect_archive`` they call replaced by ``through_one_pass``: the archive
is streamed through ``seal_in_one_pass`` in uneven pieces, as a request body arrives,
into a local site's pending object. So every happy path must give the same report and
every hostile archive the same refusal code as the file inspection, and after each
refusal the site and the spool must hold nothing."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

import pytest

from tests.vault import test_archive_inspection as inspection
from tests.vault.test_archive_inspection import *  # noqa: F403 - collected again, here
from tests.vault.test_one_pass_parts import local_site
from vault import age
from vault.archive import ArchiveLimits, ArchiveRejected, ArchiveReport
from vault.one_pass import BodyTooLarge, seal_in_one_pass

_IDENTITY = age.X25519Identity.generate()


class _UnevenBody(io.BytesIO):
    """Hands out pieces of varying size, as a socket does."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._sizes = random.Random(len(data))

    def read(self, size: int | None = -1) -> bytes:
        wanted = size if size is not None and size >= 0 else len(self.getbuffer())
        return super().read(min(wanted, self._sizes.choice([1, 511, 4096, 65536, 1 << 20])))


def through_one_pass(
    path: Path, *, limits: ArchiveLimits, known_sha256: str | None = None
) -> ArchiveReport:
    data = path.read_bytes()
    root = path.parent / f"one-pass-site-{path.name}"
    site = local_site(root)
    spool = path.parent / f"{path.name}.spool"
    try:
        sealed = seal_in_one_pass(
            _UnevenBody(data),
            recipients=[_IDENTITY.recipient()],
            pending=site.begin_put("deposits/x/sealed.age"),
            limits=limits,
            claimed_sha256=hashlib.sha256(data).hexdigest(),
            spool=spool,
        )
    except BodyTooLarge:
        _assert_nothing_left(root, spool)
        raise ArchiveRejected("too_large_archive", "the body is larger than the limit") from None
    except ArchiveRejected:
        _assert_nothing_left(root, spool)
        raise
    assert not spool.exists()
    sealed_file = root / "deposits/x/sealed.age"
    assert hashlib.sha256(sealed_file.read_bytes()).hexdigest() == sealed.ciphertext_sha256
    opened = io.BytesIO()
    age.decrypt(io.BytesIO(sealed_file.read_bytes()), opened, [_IDENTITY])
    assert opened.getvalue() == data
    return sealed.report  # the tests compare it with what the archive holds


def _assert_nothing_left(root: Path, spool: Path) -> None:
    assert [p for p in root.rglob("*") if p.is_file()] == [], "a refused archive left objects"
    assert not spool.exists(), "a refused archive left its spool"


@pytest.fixture(autouse=True)
def _inspect_through_one_pass(monkeypatch: pytest.MonkeyPatch, request: Any) -> None:
    if request.node.originalname == "test_it_inspects_a_64_mib_member_in_constant_memory":
        pytest.skip("measures the file inspection's own memory; bench/ measures the pass's")
    monkeypatch.setattr(inspection, "inspect_archive", through_one_pass)


def test_the_inspection_tests_here_really_go_through_the_one_pass() -> None:
    assert inspection.inspect_archive is through_one_pass
