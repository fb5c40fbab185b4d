"""Storing a sealed deposit, on any machine: sealing puts the sealed file and manifest in
the primary site before the deposit is ``sealed``, so a worker that never saw the upload
(its intake folder empty, another machine) stores and replicates it from there. A sealed
part that is missing or changed in the site is refused, and staff are told."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from escrow.models import Deposit, DepositCopy
from escrow.services import intake
from escrow.services.deposits import (
    deposit_register,
    deposit_retry,
    deposit_seal,
    deposit_verify,
    lease_owner_new,
)
from escrow.services.intake import deposit_store_sealed
from escrow.services.recipients import seal_recipients
from escrow.tasks import deposit_store_sealed_task
from records.models import AuditEntry
from tests import archives
from tests.factories import make_deposit
from vault import age

BODY = archives.tar_gz()


@pytest.fixture(autouse=True)
def staff_mail(settings) -> None:
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]


def primary() -> Path:
    return Path(settings.ESCROW_SITES[0]["path"])


def sealed_on_machine_a(product, version: str = "1.0.0") -> Deposit:
    """Machine A receives, checks and seals the upload under its lease, then stops
    before storing (it was killed); its intake folder is then lost with it."""
    owner = lease_owner_new()
    deposit = deposit_register(
        product=product,
        version=version,
        archive_sha256=archives.sha256(BODY),
        lease_owner=owner,
    )
    intake._check_and_seal(
        deposit, io.BytesIO(BODY), seal_recipients(), intake._Lease(deposit, owner)
    )
    deposit.refresh_from_db()
    assert deposit.state == "sealed"
    assert not list(settings.ESCROW_INTAKE_DIR.iterdir())  # nothing left behind on A
    shutil.rmtree(settings.ESCROW_INTAKE_DIR)
    Deposit.objects.filter(pk=deposit.pk).update(lease_expires_at=None)  # A's lease is gone
    return deposit


def test_a_worker_on_another_machine_stores_and_replicates_from_the_primary(
    product, notary_identity, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    deposit = sealed_on_machine_a(product)
    assert deposit.seal_attempt
    sealed_key = deposit.object_key("sealed")
    assert sealed_key == f"deposits/ledger-pro/{deposit.pk}/{deposit.seal_attempt}/sealed.age"
    assert (primary() / sealed_key).exists()  # durable before the state moved
    settings.ESCROW_INTAKE_DIR = tmp_path / "machine-b" / "intake"  # empty, never created

    with django_capture_on_commit_callbacks(execute=True):
        deposit_store_sealed_task(deposit_id=deposit.pk)
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert (deposit.problem, deposit.lease_owner, deposit.lease_expires_at) == ("", "", None)
    copies = {(copy.site, copy.kind): copy for copy in DepositCopy.objects.filter(deposit=deposit)}
    assert set(copies) == {
        (site, kind)
        for site in ("primary", "replica")
        for kind in ("sealed", "manifest", "signature")
    }
    assert copies[("primary", "sealed")].sha256 == deposit.ciphertext_sha256
    assert copies[("primary", "manifest")].sha256 == deposit.manifest_sha256
    opened = io.BytesIO()
    with (primary() / sealed_key).open("rb") as sealed:
        age.decrypt(sealed, opened, [notary_identity])
    assert opened.getvalue() == BODY
    assert not settings.ESCROW_INTAKE_DIR.exists()  # machine B never held any of it


def test_a_redelivered_store_task_is_harmless(
    product, notary_identity, django_capture_on_commit_callbacks
) -> None:
    deposit = sealed_on_machine_a(product)
    with django_capture_on_commit_callbacks(execute=True):
        deposit_store_sealed_task(deposit_id=deposit.pk)
        deposit_store_sealed_task(deposit_id=deposit.pk)  # the same message again
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert DepositCopy.objects.filter(deposit=deposit).count() == 6
    stores = AuditEntry.objects.filter(action="deposit.store", object_id=str(deposit.pk))
    assert stores.count() == 1


def test_a_live_lease_of_another_process_is_left_alone(product, notary_identity) -> None:
    deposit = sealed_on_machine_a(product)
    Deposit.objects.filter(pk=deposit.pk).update(
        lease_owner="web-2:77:0badc0de", lease_expires_at="2999-01-01T00:00:00Z"
    )
    deposit.refresh_from_db()
    stored = deposit_store_sealed(deposit=deposit)
    stored.refresh_from_db()
    assert (stored.state, stored.lease_owner) == ("sealed", "web-2:77:0badc0de")
    assert not DepositCopy.objects.filter(deposit=deposit).exists()


def test_a_sealed_file_missing_from_the_primary_fails_the_deposit_and_tells_staff(
    product, notary_identity, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    deposit = sealed_on_machine_a(product)
    lost = primary() / deposit.object_key("sealed")
    lost.chmod(0o600)
    lost.unlink()
    with django_capture_on_commit_callbacks(execute=True):
        deposit_store_sealed(deposit=deposit)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem == (
        f"store: storage site 'primary': {deposit.object_key('sealed')} is not in the site"
    )
    assert not DepositCopy.objects.filter(deposit=deposit).exists()
    assert [message.subject for message in mailoutbox] == [
        "[Django] Deposit ledger-pro 1.0.0 failed"
    ]
    assert deposit.problem in mailoutbox[0].body


def test_a_sealed_file_changed_in_the_primary_is_not_recorded(product, notary_identity) -> None:
    deposit = sealed_on_machine_a(product)
    changed = primary() / deposit.object_key("sealed")
    changed.chmod(0o600)
    changed.write_bytes(changed.read_bytes()[:-1] + b"\x00")
    deposit_store_sealed(deposit=deposit)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem.startswith(
        f"store: storage site 'primary': {deposit.object_key('sealed')} has SHA-256 "
    )
    assert deposit.problem.endswith(f"not {deposit.ciphertext_sha256} as recorded")
    assert not DepositCopy.objects.filter(deposit=deposit).exists()


def test_a_failed_store_is_retried_by_staff_on_any_machine(
    product, notary_identity, staff, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    deposit = sealed_on_machine_a(product)
    site = primary()
    hidden = site.with_name("primary-away")
    site.rename(hidden)
    site.write_text("not a folder")  # the primary is down
    deposit_store_sealed(deposit=deposit)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem.startswith("store: storage site 'primary':")

    site.unlink()
    hidden.rename(site)
    settings.ESCROW_INTAKE_DIR = tmp_path / "another-machine"
    with django_capture_on_commit_callbacks(execute=True):
        deposit_retry(deposit=deposit, actor=staff, reason="primary is back")
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")
    assert DepositCopy.objects.filter(deposit=deposit).count() == 6


def test_a_deposit_sealed_into_an_outbox_of_old_fails_naming_it(product, mailoutbox) -> None:
    deposit = make_deposit(product=product)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    Deposit.objects.filter(pk=deposit.pk).update(lease_expires_at=None)
    deposit.refresh_from_db()
    deposit_store_sealed(deposit=deposit)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")
    assert deposit.problem == (
        "store: the sealed file was kept only in the outbox of the machine that received it "
        "(sealed before sealed files went to the primary site); the pipeline must upload "
        "the archive again."
    )
    assert not DepositCopy.objects.filter(deposit=deposit).exists()
