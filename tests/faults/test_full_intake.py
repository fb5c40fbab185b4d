"""A full intake disk (issue 12, fault 5): the upload is answered 507 or 503, nothing of it
is left behind, and the next upload that fits succeeds.

The intake folder is a real 2 MiB tmpfs (so the kernel says ENOSPC, not a patched
write), which needs root: CI runs as root; elsewhere the test is skipped. Since sealing
is one pass from the body into the primary site (issue 13), only a zip, whose directory
comes last, is spooled to the intake: a zip too large for it is what fails, while a tar
of the same size needs no room there at all."""

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
    replicated_after_answer,
    staff_mails_about,
    zip_of,
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


def test_a_full_intake_is_answered_507_or_503_and_leaves_nothing_behind(
    world: World, small_intake: Path
) -> None:
    server = world.gunicorn()
    body = zip_of(3 * 1024 * 1024, seed="the spooled zip itself")
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
    replicated_after_answer(stored, server)
    assert missing_copies(stored) == []
    assert _used(small_intake) == []


def test_a_tar_larger_than_the_intake_is_sealed_in_one_pass_without_it(
    world: World, small_intake: Path
) -> None:
    server = world.gunicorn()
    answer = world.put(server, "6.1.0", archive_of(3 * 1024 * 1024, seed="one pass"))
    deposit = Deposit.objects.get(version="6.1.0")
    assert_answer_truthful(answer, deposit.state)
    assert answer.status == 202, (answer, server.log_text())
    replicated_after_answer(deposit, server)
    assert missing_copies(deposit) == []
    assert _used(small_intake) == []
