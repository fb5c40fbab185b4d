"""A full intake disk, on a real small filesystem: a 2 MiB tmpfs mounted as the intake
folder (root only, as CI runs; skipped with the reason otherwise). Only a zip is spooled
to the intake (a tar is sealed in one pass straight into the primary site), so a zip too
large for it is answered 507 with ``Retry-After``, nothing of it is left behind, staff are
told, and later uploads are not hurt by it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from escrow.models import Deposit, DepositCopy
from escrow.services.tokens import token_create
from tests import archives
from tests.conftest import skip_or_fail

URL = "/api/v1/products/ledger-pro/deposits/{version}"
MIB = 1024 * 1024


def _mount(folder: Path, size: str) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def small_intake(settings: Any, tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the intake folder needs root (CI runs as root)")
    folder = tmp_path / "small-intake"
    folder.mkdir()
    try:
        _mount(folder, "2m")
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        skip_or_fail(f"cannot mount a tmpfs here: {detail.strip()}")
    settings.ESCROW_INTAKE_DIR = folder
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def put(product, staff, notary_identity, django_capture_on_commit_callbacks):
    issued = token_create(product=product, label="CI", actor=staff)
    client = Client()

    def put(version: str, body: bytes) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return client.put(
                URL.format(version=version),
                data=body,
                content_type="application/octet-stream",
                HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
                HTTP_X_ARCHIVE_SHA256=archives.sha256(body),
            )

    return put


def incompressible(size: int) -> bytes:
    """A zip of random bytes: its size is about ``size``. A zip is the one format the
    intake spools (its directory is at its end), so only a zip needs room there."""
    return archives.zip_bytes({**archives.PROJECT, "project/blob.bin": os.urandom(size)})


def test_a_zip_larger_than_the_intake_disk_is_answered_507_and_leaves_nothing(
    small_intake, put, mailoutbox
) -> None:
    response = put("1.0.0", incompressible(3 * MIB))
    assert response.status_code == 507
    assert response["Retry-After"] == "60"
    deposit = Deposit.objects.get()
    assert (deposit.state, deposit.failed_from) == ("failed", "received")
    assert deposit.problem.startswith("intake_full: the intake folder is full (")
    assert deposit.problem.endswith(
        "nothing of this upload was kept. Upload the same archive again later."
    )
    assert response.json()["problem"] == deposit.problem
    assert list(small_intake.iterdir()) == []
    assert not DepositCopy.objects.exists()
    told = [m for m in mailoutbox if m.subject == "[Django] Deposit ledger-pro 1.0.0 failed"]
    assert len(told) == 1 and deposit.problem in told[0].body


def test_a_tar_is_sealed_in_one_pass_and_needs_no_room_in_the_intake(small_intake, put) -> None:
    body = archives.tar_gz({**archives.PROJECT, "project/blob.bin": os.urandom(3 * MIB)})
    response = put("1.0.0", body)
    assert response.status_code == 202, response.json()
    deposit = Deposit.objects.get()
    assert (deposit.state, deposit.problem) == ("replicated", "")
    assert list(small_intake.iterdir()) == []


def test_a_full_intake_hurts_no_later_upload_and_the_same_upload_completes_later(
    small_intake, put
) -> None:
    body = incompressible(3 * MIB)
    assert put("1.0.0", body).status_code == 507
    assert list(small_intake.iterdir()) == []  # no part of the spooled plaintext is left

    # A smaller archive of another version goes through: nothing was left to fill the disk.
    assert put("1.0.1", archives.zip_bytes()).status_code == 202
    assert Deposit.objects.get(version="1.0.1").state == "replicated"

    # Once there is room, the same upload again completes the failed one.
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_intake)], check=True)
    again = put("1.0.0", body)
    assert again.status_code == 202
    deposit = Deposit.objects.get(version="1.0.0")
    assert (deposit.state, deposit.problem) == ("replicated", "")
    assert list(small_intake.iterdir()) == []
