"""Sealing in one pass (vault/one_pass.py through the deposit API): whichever stage of the
pass fails, nothing becomes visible in any site and nothing is left in the intake; a sealed
file the primary damages after it was written is caught by the read-back before the
deposit is ``replicated``."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from escrow.models import Deposit, DepositCopy
from escrow.services.deposits import DAMAGED_IN_PRIMARY, deposit_durable, deposit_retry
from escrow.services.intake import deposit_receive
from escrow.services.tokens import token_create
from records.services.transitions import TransitionRefused
from tests import archives
from tests.conftest import skip_or_fail

URL = "/api/v1/products/ledger-pro/deposits/{version}"
MIB = 1024 * 1024


@pytest.fixture
def issued(product, staff):
    return token_create(product=product, label="CI", actor=staff)


@pytest.fixture
def put(issued, notary_identity, django_capture_on_commit_callbacks):
    client = Client()

    def put(version: str, body: bytes, *, sha: str | None = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return client.put(
                URL.format(version=version),
                data=body,
                content_type="application/octet-stream",
                HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
                HTTP_X_ARCHIVE_SHA256=sha or archives.sha256(body),
            )

    return put


def site_root(settings: Any, name: str) -> Path:
    return Path(next(site["path"] for site in settings.ESCROW_SITES if site["name"] == name))


def everything_in(settings: Any) -> list[str]:
    """Every file in every site folder, hidden temporary files included."""
    found = []
    for site in settings.ESCROW_SITES:
        root = Path(site["path"])
        if root.exists():
            found += [str(path) for path in root.rglob("*") if path.is_file()]
    return sorted(found)


def intake_files(settings: Any) -> list[Path]:
    folder = settings.ESCROW_INTAKE_DIR
    return sorted(folder.iterdir()) if folder.exists() else []


def stored_before_replication(issued: Any, body: bytes, capture: Any) -> tuple[Deposit, list[Any]]:
    """A deposit received through the intake service, with its replication held back."""
    with capture(execute=False) as replication:
        received = deposit_receive(
            token=issued.token,
            version="1.0.0",
            body=io.BytesIO(body),
            claimed_sha256=archives.sha256(body),
            content_length=len(body),
            pipeline={},
        )
    return received.deposit, replication


def tar_with_hostile_member_after(size: int) -> bytes:
    """A good member of ``size`` random bytes, then one that climbs out of the tree."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in (("project/blob.bin", os.urandom(size)), ("../evil.sh", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_a_body_that_ends_early_is_refused_as_damaged_and_leaves_nothing(put, settings) -> None:
    body = archives.tar_gz({**archives.PROJECT, "project/blob.bin": os.urandom(3 * MIB)})
    response = put("1.0.0", body[: len(body) // 2], sha=archives.sha256(body))
    assert response.status_code == 422
    assert response.json()["problem"].startswith("sha256_mismatch: the body's SHA-256 is ")
    deposit = Deposit.objects.get()
    assert (deposit.state, deposit.archive_size) == ("rejected", len(body) // 2)
    assert everything_in(settings) == []
    assert intake_files(settings) == []


def test_a_body_whose_connection_breaks_fails_the_deposit_and_leaves_nothing(
    issued, notary_identity, settings
) -> None:
    body = archives.tar_gz({**archives.PROJECT, "project/blob.bin": os.urandom(3 * MIB)})

    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > MIB:
                raise ConnectionResetError(104, "Connection reset by peer")
            return super().read(min(size or MIB, 256 * 1024))

    received = deposit_receive(
        token=issued.token,
        version="1.0.0",
        body=Broken(body),
        claimed_sha256=archives.sha256(body),
        content_length=len(body),
        pipeline={},
    )
    deposit = received.deposit
    assert (deposit.state, deposit.failed_from) == ("failed", "received")
    assert deposit.problem == "intake: [Errno 104] Connection reset by peer"
    assert everything_in(settings) == []
    assert intake_files(settings) == []


@pytest.mark.parametrize("wrap", ["tar", "tar.gz"])
def test_a_member_hostile_halfway_is_refused_and_nothing_becomes_visible(
    put, settings, wrap
) -> None:
    body = tar_with_hostile_member_after(3 * MIB)
    if wrap == "tar.gz":
        import gzip

        body = gzip.compress(body, compresslevel=1)
    response = put("1.0.0", body)
    assert response.status_code == 422, response.json()
    assert response.json()["problem"].startswith("path_traversal: ")
    assert "'../evil.sh'" in response.json()["problem"]
    assert Deposit.objects.get().state == "rejected"
    assert everything_in(settings) == []  # not even the pending temporary file
    assert intake_files(settings) == []
    assert not DepositCopy.objects.exists()


def test_a_hostile_zip_is_refused_from_its_spool_and_nothing_becomes_visible(put, settings) -> None:
    body = archives.zip_bytes({**archives.PROJECT, "../evil.sh": b"x"})
    response = put("1.0.0", body)
    assert response.status_code == 422, response.json()
    assert response.json()["problem"].startswith("path_traversal: ")
    assert everything_in(settings) == []
    assert intake_files(settings) == []  # the spooled plaintext is gone


def test_a_zip_is_inspected_from_its_spool_and_sealed(put, settings, notary_identity) -> None:
    body = archives.zip_bytes()
    response = put("1.0.0", body)
    assert response.status_code == 202, response.json()
    deposit = Deposit.objects.get()
    assert deposit.state == "replicated"
    assert deposit.manifest["archive"]["format"] == "zip"
    assert intake_files(settings) == []


@pytest.fixture
def small_primary(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """The primary site's folder on a real 2 MiB tmpfs (root only, as CI runs)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the primary site needs root (CI runs as root)")
    folder = site_root(settings, "primary")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(folder)],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        skip_or_fail(f"cannot mount a tmpfs here: {detail.strip()}")
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_site_that_fills_up_mid_pass_keeps_nothing_and_the_same_upload_completes_later(
    small_primary, put, settings, mailoutbox
) -> None:
    body = archives.tar_gz({**archives.PROJECT, "project/blob.bin": os.urandom(3 * MIB)})
    response = put("1.0.0", body)
    assert response.status_code == 503
    deposit = Deposit.objects.get()
    assert (deposit.state, deposit.failed_from) == ("failed", "received")
    assert deposit.problem.startswith("store: storage site 'primary': could not store ")
    assert "No space left on device" in deposit.problem
    assert everything_in(settings) == []  # the partial temporary file was removed
    assert intake_files(settings) == []
    assert any("Deposit ledger-pro 1.0.0 failed" in mail.subject for mail in mailoutbox)

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_primary)], check=True)
    again = put("1.0.0", body)
    assert again.status_code == 202
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")


def test_a_sealed_file_damaged_in_the_primary_is_caught_before_replicated(
    issued, notary_identity, settings, put, django_capture_on_commit_callbacks, mailoutbox
) -> None:
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]
    body = archives.tar_gz({**archives.PROJECT, "project/blob.bin": os.urandom(MIB)})
    deposit, replication = stored_before_replication(
        issued, body, django_capture_on_commit_callbacks
    )
    deposit.refresh_from_db()
    assert deposit.state == "stored"
    written = DepositCopy.objects.get(deposit=deposit, site="primary", kind="sealed")
    assert written.verified_at is None  # fsynced with its hash computed on write; not read back

    # The disk damages one byte of the sealed file after it was written and fsynced.
    sealed = site_root(settings, "primary") / written.key
    sealed.chmod(0o644)
    with sealed.open("r+b") as file:
        file.seek(written.size // 2)
        byte = file.read(1)
        file.seek(written.size // 2)
        file.write(bytes([byte[0] ^ 0x01]))

    with django_capture_on_commit_callbacks(execute=True):
        for callback in replication:
            callback()

    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "stored")
    assert deposit.problem.startswith(f"{DAMAGED_IN_PRIMARY}: {written.key} in primary reads back")
    assert deposit.problem.endswith("The sealed bytes are lost; upload the same archive again.")
    assert not DepositCopy.objects.filter(deposit=deposit, site="replica", kind="sealed").exists()
    assert not (site_root(settings, "replica") / written.key).exists()
    assert any(deposit.problem in mail.body for mail in mailoutbox)
    # Staff cannot retry it (the bytes are gone); the pipeline's upload again redoes it.
    assert not deposit_durable(deposit)
    with pytest.raises(TransitionRefused, match="upload the same archive again"):
        deposit_retry(deposit=deposit, actor=None)

    again = put("1.0.0", body)
    assert again.status_code == 202, again.json()
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")
    copies = DepositCopy.objects.filter(deposit=deposit)
    assert copies.count() == 6
    assert all(copy.verified_at is not None for copy in copies)
    assert written.key not in {copy.key for copy in copies}  # a new attempt, new keys


def test_replication_reads_back_the_written_copy_before_calling_it_verified(
    issued, notary_identity, django_capture_on_commit_callbacks
) -> None:
    body = archives.tar_gz()
    deposit, replication = stored_before_replication(
        issued, body, django_capture_on_commit_callbacks
    )
    assert (
        DepositCopy.objects.get(deposit=deposit, site="primary", kind="sealed").verified_at is None
    )
    for callback in replication:
        callback()
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert deposit_durable(deposit) is False  # not failed: nothing to be durable for
    assert DepositCopy.objects.filter(deposit=deposit, verified_at__isnull=True).count() == 0
