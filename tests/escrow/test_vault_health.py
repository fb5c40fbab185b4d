"""``vault health`` and the scheduled health check: a deposit with fewer verified copies
than there are sites for longer than the grace period, or with none at all, is a
problem that fails the command and is mailed to staff; within the grace period it is
only pending. Deposits go through the real pipeline; time is moved with time-machine."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command

from escrow.models import Deposit, DepositCopy
from escrow.services.intake import deposit_receive
from escrow.services.replication import deposit_replicate_copies
from escrow.services.tokens import token_create
from escrow.services.vault_health import vault_health, vault_health_check
from escrow.tasks import vault_health_check_task
from tests import archives


@pytest.fixture
def stored(product, staff, notary_identity, django_capture_on_commit_callbacks):
    """A deposit stored in the primary whose replication has not run yet."""
    issued = token_create(product=product, label="CI", actor=staff)

    def deposit(version: str = "1.0.0") -> Deposit:
        body = archives.tar_gz({**archives.PROJECT, "project/VERSION": version.encode()})
        with django_capture_on_commit_callbacks(execute=False):
            received = deposit_receive(
                token=issued.token,
                version=version,
                body=io.BytesIO(body),
                claimed_sha256=archives.sha256(body),
                content_length=len(body),
                pipeline={},
            )
        received.deposit.refresh_from_db()
        assert received.deposit.state == "stored", received.deposit.problem
        return received.deposit

    return deposit


@pytest.fixture(autouse=True)
def staff_mail(settings):
    settings.ADMINS = [("Escrow staff", "staff@escrow.example")]
    settings.ESCROW_COPY_GRACE_SECONDS = 3600


def health_command(capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) as the shell sees them: the final error line included."""
    last = ""
    try:
        call_command("vault", "health")
        status = 0
    except CommandError as error:
        status, last = error.returncode, f"vault: {error}\n"
    out, err = capsys.readouterr()
    return status, out, err + last


def test_a_whole_vault_is_healthy_and_nobody_is_mailed(stored, capsys, mailoutbox) -> None:
    deposit = deposit_replicate_copies(deposit=stored())
    deposit.refresh_from_db()
    assert deposit.state == "replicated"

    health = vault_health()

    assert (health.checked, health.problems, health.pending) == (1, [], [])
    assert health.sites == ["primary", "replica"]
    assert vault_health_check().healthy
    assert vault_health_check_task() == {"checked": 1, "problems": 0}
    assert mailoutbox == []
    status, out, err = health_command(capsys)
    assert (status, err) == (0, "")
    assert "1 deposit(s) checked, every one verified in every site (primary, replica)" in out


def test_a_single_copy_is_pending_within_the_grace_period_and_a_problem_after_it(
    stored, capsys, mailoutbox
) -> None:
    deposit = stored()
    # The manifest and signature are read back when stored; the sealed file, written in
    # one pass, only by replication (docs/architecture.md, "What each deposit state promises").
    first_copy = (
        DepositCopy.objects.filter(deposit=deposit, verified_at__isnull=False)
        .earliest("verified_at")
        .verified_at
    )

    with time_machine.travel(first_copy + timedelta(seconds=3599), tick=False):
        health = vault_health()
        status, out, _ = health_command(capsys)
        assert vault_health_check_task() == {"checked": 1, "problems": 0}
    assert health.problems == []
    assert health.pending == [
        f"deposit #{deposit.pk} ({deposit}, stored): verified copies in 0 of 2 sites, "
        "written but not yet read back in primary, missing in replica, for 59 min"
    ]
    assert status == 0
    assert f"pending: deposit #{deposit.pk}" in out
    assert mailoutbox == []

    with time_machine.travel(first_copy + timedelta(seconds=3601 + 3600), tick=False):
        health = vault_health()
        status, _, err = health_command(capsys)
        assert vault_health_check_task() == {"checked": 1, "problems": 1}
    assert health.problems == [
        f"deposit #{deposit.pk} ({deposit}, stored): verified copies in 0 of 2 sites, "
        "written but not yet read back in primary, missing in replica, for 2 h 0 min"
    ]
    assert status == 1
    assert f"problem: deposit #{deposit.pk}" in err
    assert "1 of 1 deposit(s) lack verified copies" in err
    [mail] = mailoutbox
    assert mail.to == ["staff@escrow.example"]
    assert "1 deposit(s) without enough verified copies" in mail.subject
    assert health.problems[0] in mail.body
    assert "docs/operations.md" in mail.body

    # Once replicated, the same moment is healthy again.
    deposit_replicate_copies(deposit=deposit)
    with time_machine.travel(first_copy + timedelta(seconds=3601 + 3600), tick=False):
        assert vault_health().healthy
        assert health_command(capsys)[0] == 0


def test_a_deposit_with_no_verified_copy_anywhere_is_a_problem_at_once(
    stored, capsys, mailoutbox
) -> None:
    deposit, healthy = stored("1.0.0"), stored("1.1.0")
    deposit_replicate_copies(deposit=healthy)
    # Its records are lost (or it never got any): no grace period applies.
    DepositCopy.objects.filter(deposit=deposit).delete()

    health = vault_health_check()

    assert health.checked == 2
    assert health.problems == [
        f"deposit #{deposit.pk} ({deposit}, stored): no verified copy in any site"
    ]
    [mail] = mailoutbox
    assert health.problems[0] in mail.body
    status, _, err = health_command(capsys)
    assert status == 1
    assert "no verified copy in any site" in err
    assert str(healthy) not in err


def test_the_grace_period_is_the_setting(stored, settings) -> None:
    settings.ESCROW_COPY_GRACE_SECONDS = 60
    deposit = stored()
    # The manifest and signature are read back when stored; the sealed file, written in
    # one pass, only by replication (docs/architecture.md, "What each deposit state promises").
    first_copy = (
        DepositCopy.objects.filter(deposit=deposit, verified_at__isnull=False)
        .earliest("verified_at")
        .verified_at
    )
    with time_machine.travel(first_copy + timedelta(seconds=59), tick=False):
        assert vault_health().healthy
    with time_machine.travel(first_copy + timedelta(seconds=61), tick=False):
        assert not vault_health().healthy


def test_a_rejected_deposit_is_not_checked(product, staff, notary_identity) -> None:
    body = archives.traversal()
    issued = token_create(product=product, label="CI", actor=staff)
    rejected = deposit_receive(
        token=issued.token,
        version="9.9.9",
        body=io.BytesIO(body),
        claimed_sha256=archives.sha256(body),
        content_length=len(body),
        pipeline={},
    ).deposit
    assert rejected.state == "rejected"
    assert vault_health().checked == 0


def test_the_health_command_takes_no_arguments(capsys) -> None:
    with pytest.raises(CommandError, match="unrecognized arguments: --fix"):
        call_command("vault", "health", "--fix")
