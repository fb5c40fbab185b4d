"""The answer is the truth: what the deposit API says to a pipeline that uploads an
archive again, for a deposit in every state it can be found in.

200 "already deposited" only when the deposit is safe in the primary site; 202 with
the real state when the upload resumed or redid it, or another live process is
working on it; 503 with ``Retry-After`` while a storage site is down."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from escrow.models import Deposit, DepositCopy
from escrow.services import intake
from escrow.services.deposits import (
    deposit_fail,
    deposit_register,
    deposit_verify,
    lease_owner_new,
)
from escrow.services.recipients import seal_recipients
from escrow.services.tokens import token_create
from records.models import AuditEntry
from tests import archives
from tests.s3server import closed_endpoint_url, s3_site_config

URL = "/api/v1/products/ledger-pro/deposits/{version}"
BODY = archives.tar_gz()
SHA = archives.sha256(BODY)


@pytest.fixture
def pipeline(product, staff, notary_identity, django_capture_on_commit_callbacks):
    issued = token_create(product=product, label="CI", actor=staff)

    class Pipeline:
        client = Client()

        def put(self, body: bytes = BODY, *, sha: str = SHA) -> Any:
            with django_capture_on_commit_callbacks(execute=True):
                return self.client.put(
                    URL.format(version="1.0.0"),
                    data=body,
                    content_type="application/octet-stream",
                    HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
                    HTTP_X_ARCHIVE_SHA256=sha,
                )

        def status(self, deposit_id: int) -> dict[str, Any]:
            return self.client.get(
                f"/api/v1/deposits/{deposit_id}", HTTP_AUTHORIZATION=f"Bearer {issued.secret}"
            ).json()

    return Pipeline()


def later() -> Any:
    """Past the lease of whatever process held the deposit a moment ago."""
    return time_machine.travel(
        timezone.now() + timedelta(seconds=settings.ESCROW_DEPOSIT_LEASE_SECONDS + 1)
    )


def intake_files() -> list[Path]:
    folder = settings.ESCROW_INTAKE_DIR
    return sorted(folder.iterdir()) if folder.exists() else []


def audit_trail(deposit: Deposit) -> list[tuple[str, str, str]]:
    return list(
        AuditEntry.objects.filter(object_id=str(deposit.pk), action__startswith="deposit.")
        .order_by("sequence")
        .values_list("action", "from_state", "to_state")
    )


def received_by_a_process_that_died(product, *, verified: bool = False) -> Deposit:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256=SHA, lease_owner="web-1:42:0ddba11"
    )
    if verified:
        deposit_verify(
            deposit=deposit, manifest={"stand-in": True}, manifest_sha256="a" * 64, signature="s"
        )
    return deposit


def sealed_by_a_process_that_died(product) -> Deposit:
    owner = lease_owner_new()
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256=SHA, lease_owner=owner
    )
    intake._check_and_seal(
        deposit, io.BytesIO(BODY), seal_recipients(), intake._Lease(deposit, owner)
    )
    deposit.refresh_from_db()
    assert deposit.state == "sealed"
    return deposit


def test_the_first_upload_is_accepted_and_a_repeat_of_a_stored_one_is_already_deposited(
    pipeline,
) -> None:
    first = pipeline.put()
    assert first.status_code == 202
    assert first.json()["state"] == "stored"  # what was true when it answered
    again = pipeline.put()
    assert again.status_code == 200
    assert again.json()["state"] == "replicated"
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("verified", [False, True], ids=["received", "verified"])
def test_a_deposit_whose_receiver_is_working_is_not_claimed_done(
    verified, pipeline, product
) -> None:
    deposit = received_by_a_process_that_died(product, verified=verified)
    state = deposit.state
    trail = audit_trail(deposit)
    answer = pipeline.put()  # within the first process's lease: it may still be alive
    assert answer.status_code == 202
    assert (answer.json()["id"], answer.json()["state"]) == (deposit.pk, state)
    deposit.refresh_from_db()
    assert (deposit.state, deposit.lease_owner) == (state, "web-1:42:0ddba11")
    assert audit_trail(deposit) == trail
    assert intake_files() == []


@pytest.mark.parametrize("verified", [False, True], ids=["received", "verified"])
def test_a_deposit_whose_receiver_died_is_redone_by_the_upload_again(
    verified, pipeline, product
) -> None:
    deposit = received_by_a_process_that_died(product, verified=verified)
    state = deposit.state
    with later():
        answer = pipeline.put()
    assert answer.status_code == 202
    assert (answer.json()["id"], answer.json()["state"]) == (deposit.pk, "stored")
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")
    assert deposit.manifest["archive"]["sha256"] == SHA  # checked again, for real
    assert audit_trail(deposit)[-6:-4] == [
        ("deposit.fail", state, "failed"),
        ("deposit.retry", "failed", "received"),
    ]
    assert DepositCopy.objects.filter(deposit=deposit).count() == 6
    assert intake_files() == []


def test_a_sealed_deposit_whose_receiver_died_is_stored_without_the_body(pipeline, product) -> None:
    deposit = sealed_by_a_process_that_died(product)
    with later():
        answer = pipeline.put(b"")  # the body is not needed: the primary holds it sealed
    assert answer.status_code == 202
    assert answer.json()["state"] == "stored"
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert [step for step, _, _ in audit_trail(deposit)][-2:] == [
        "deposit.store",
        "deposit.replicate",
    ]


def test_a_sealed_deposit_with_a_live_lease_is_answered_with_its_state(pipeline, product) -> None:
    deposit = sealed_by_a_process_that_died(product)
    answer = pipeline.put()
    assert answer.status_code == 202
    assert answer.json()["state"] == "sealed"
    assert pipeline.status(deposit.pk)["state"] == "sealed"
    assert not DepositCopy.objects.filter(deposit=deposit).exists()


def test_a_retry_while_the_primary_is_still_down_answers_503_not_200(
    pipeline, product, settings
) -> None:
    deposit = sealed_by_a_process_that_died(product)
    primary = Path(settings.ESCROW_SITES[0]["path"])
    away = primary.with_name("primary-away")
    primary.rename(away)
    primary.write_text("not a folder")  # down
    with later():
        answer = pipeline.put()
    assert answer.status_code == 503
    assert answer["Retry-After"] == "60"
    assert answer.json()["state"] == "failed"
    assert answer.json()["problem"].startswith("store: storage site 'primary': ")
    with later():
        again = pipeline.put()  # still down: the same truth, not "already deposited"
    assert again.status_code == 503
    deposit.refresh_from_db()
    assert (deposit.state, deposit.failed_from) == ("failed", "sealed")

    primary.unlink()
    away.rename(primary)
    back = pipeline.put()
    assert back.status_code == 202
    assert (back.json()["state"], back.json()["problem"]) == ("stored", "")
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")


def test_an_unreachable_s3_primary_answers_503_and_keeps_nothing(
    pipeline, settings, tmp_path
) -> None:
    settings.ESCROW_SITES = [
        s3_site_config("primary", "vault-down", closed_endpoint_url()),
        {"name": "replica", "kind": "local", "path": str(tmp_path / "replica")},
    ]
    answer = pipeline.put()
    assert answer.status_code == 503
    assert answer["Retry-After"] == "60"
    assert answer.json()["state"] == "failed"
    assert answer.json()["problem"].startswith("store: ")
    assert not DepositCopy.objects.exists()
    assert intake_files() == []


def stored_without_replication(product, django_capture_on_commit_callbacks) -> Deposit:
    """Stored in the primary; its replication task was lost (never ran)."""
    deposit = sealed_by_a_process_that_died(product)
    with django_capture_on_commit_callbacks(execute=False):
        intake.deposit_store_sealed(deposit=deposit, lease_owner=deposit.lease_owner)
    deposit.refresh_from_db()
    assert deposit.state == "stored"
    assert DepositCopy.objects.filter(deposit=deposit).count() == 3
    return deposit


def test_a_stored_deposit_is_already_deposited_and_lost_replication_is_queued_again(
    pipeline, product, django_capture_on_commit_callbacks
) -> None:
    deposit = stored_without_replication(product, django_capture_on_commit_callbacks)
    within = pipeline.put()  # its replication may still be running: nothing to redo
    assert (within.status_code, within.json()["state"]) == (200, "stored")
    assert DepositCopy.objects.filter(deposit=deposit).count() == 3
    lost = timezone.now() + timedelta(seconds=settings.ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS + 1)
    with time_machine.travel(lost):
        answer = pipeline.put()
    assert (answer.status_code, answer.json()["state"]) == (200, "stored")
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert DepositCopy.objects.filter(deposit=deposit).count() == 6


def test_a_deposit_whose_replication_failed_is_resumed_and_answered_202(
    pipeline, product, django_capture_on_commit_callbacks
) -> None:
    deposit = stored_without_replication(product, django_capture_on_commit_callbacks)
    deposit_fail(deposit=deposit, problem="replicate: replica refused")
    answer = pipeline.put()
    assert answer.status_code == 202
    assert (answer.json()["state"], answer.json()["problem"]) == ("stored", "")
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")
