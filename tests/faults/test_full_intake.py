"""A full intake disk (issue 12, fault 5): the upload is answered 507 or 503, nothing of it
is left behind, and the next upload that fits succeeds.

The intake folder is a real 2 MiB tmpfs (so the kernel says ENOSPC, not a patched
write), which needs root: CI runs as root; elsewhere the test is skipped. One archive
is too large to receive at all; the other is received whole but its ciphertext no
longer fits beside it, so sealing is what fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escrow.models import Deposit
from tests.faults.conftest import (
    World,
    archive_of,
    assert_answer_truthful,
    missing_copies,
    plaintext_left,
    staff_mails_about,
)

TMPFS_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_intake(world: World, settings: Any, tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as the intake folder of every process of the world."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mountpoint = tmp_path / "intake"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    settings.ESCROW_INTAKE_DIR = mountpoint
    try:
        yield mountpoint
    finally:
        world.stop()  # nothing may hold a file open there when it goes
        subprocess.run(["umount", str(mountpoint)], check=False)


def _used(folder: Path) -> list[str]:
    return [str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()]


@pytest.mark.parametrize(
    ("archive_bytes", "what_fills_it"),
    [(3 * 1024 * 1024, "the upload itself"), (1200 * 1024, "the ciphertext beside it")],
)
def test_a_full_intake_is_answered_507_or_503_and_leaves_nothing_behind(
    world: World, small_intake: Path, archive_bytes: int, what_fills_it: str
) -> None:
    server = world.gunicorn()
    body = archive_of(archive_bytes, seed=what_fills_it)
    answer = world.put(server, "6.0.0", body)
    deposit = Deposit.objects.filter(version="6.0.0").first()

    assert answer.status in (503, 507), (answer, server.log_text())
    assert_answer_truthful(answer, deposit.state if deposit else "none")
    assert _used(small_intake) == [], "the failed upload left files in the intake"
    assert plaintext_left(small_intake) == []
    if deposit is not None:
        # On record as failed with the reason, which staff were told, and the status URL
        # claims no more.
        assert deposit.state == "failed", deposit.state
        assert "space" in deposit.problem.lower() or "disk" in deposit.problem.lower(), (
            deposit.problem
        )
        assert staff_mails_about(server.log.read_text(errors="replace"), "6.0.0"), (
            "staff were not mailed about the failed deposit"
        )
        seen = world.status(server, deposit.pk)
        assert (seen["state"], seen["problem"]) == ("failed", deposit.problem)

    # A later upload that fits is not spoiled by what the failed one left (nothing).
    small = archive_of(64 * 1024, seed="fits")
    fits = world.put(server, "6.0.1", small)
    stored = Deposit.objects.get(version="6.0.1")
    assert_answer_truthful(fits, stored.state)
    assert fits.status == 202, (fits, server.log_text())
    assert stored.state == "replicated", stored.problem
    assert missing_copies(stored) == []
    assert _used(small_intake) == []
