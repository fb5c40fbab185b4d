"""Who deposits are sealed for changes only with a notary's consent, and is announced.

Proposed by staff (in the admin) or a notary, approved by a notary with a fresh
code from the authenticator in the notary portal, and only then in effect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role
from billing.services import subscription_subscribe
from escrow.models import NotaryRecipient, SealRecipientChange
from escrow.services.recipients import seal_recipients
from escrow.services.seal_changes import (
    SecondFactorRefused,
    check_fresh_code,
    notary_bootstrap,
    seal_change_approve,
    seal_change_propose,
    seal_change_reject,
    seal_change_validate,
    seal_change_withdraw,
    seal_changes_waiting,
)
from records.models import AuditEntry, Notification
from records.services.transitions import TransitionRefused, apply_transition
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import UserFactory
from tests.seal import fresh_code
from vault.age import X25519Identity

ROOT = Path(__file__).resolve().parents[2]


def new_key() -> str:
    return X25519Identity.generate().recipient().to_string()


def propose_in_admin(staff, key: str, **extra: str):
    return signed_in_client(staff).post(
        "/admin/escrow/sealrecipientchange/add/",
        {"kind": "add_break_glass_key", "public_key": key, "label": "safe", "reason": "offline"}
        | extra,
    )


def recipients_text() -> list[str]:
    return [recipient.to_string() for recipient in seal_recipients()]


def test_a_proposal_changes_nothing_until_a_notary_approves_it(
    notary_identity, notary, staff, product, licence, subscriber, django_capture_on_commit_callbacks
) -> None:
    subscription_subscribe(licence=licence, actor=subscriber, accept_terms=True)
    key = new_key()
    response = propose_in_admin(staff, key)
    assert response.status_code == 302
    change = SealRecipientChange.objects.get()
    assert (change.state, change.proposed_by) == ("proposed", staff)
    assert key not in recipients_text()
    before = deposit_through_pipeline(product=product, staff=staff, version="1.0.0")
    assert key not in before.sealed_for

    portal = signed_in_client(notary)
    assert key in portal.get("/notary/seal-changes/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        decided = portal.post(
            f"/notary/seal-changes/{change.pk}/decide/",
            {"action": "approve", "token": fresh_code(notary), "reason": "checked in person"},
        )
    assert decided.status_code == 302
    change.refresh_from_db()
    assert (change.state, change.decided_by) == ("effective", notary)
    assert key in recipients_text()
    after = deposit_through_pipeline(product=product, staff=staff, version="1.0.1")
    assert key in after.sealed_for and key in after.manifest["sealed_for"]

    changed = AuditEntry.objects.get(action="seal_recipients.changed")
    assert key in str(changed.details)
    announced = Notification.objects.filter(kind="seal_recipients_changed")
    assert {n.organisation for n in announced} == {product.vendor, subscriber.organisation}
    assert any(key in message.body for message in mail.outbox)


def test_a_wrong_or_reused_code_approves_nothing(notary_identity, notary, staff) -> None:
    first = seal_change_propose(
        kind="add_break_glass_key", actor=staff, public_key=new_key(), label="a", reason="r"
    )
    with pytest.raises(SecondFactorRefused):
        seal_change_approve(change=first, notary=notary, token="000000")
    first.refresh_from_db()
    assert first.state == "proposed"
    assert AuditEntry.objects.filter(action="notary.second_factor_failed").exists()

    # django-otp now throttles the device for a second; let that second pass.
    TOTPDevice.objects.get(user=notary).throttle_reset()
    code = fresh_code(notary)
    seal_change_approve(change=first, notary=notary, token=code)
    retire = seal_change_propose(
        kind="retire_key", actor=staff, recipient=first.recipient, reason="lost"
    )
    with pytest.raises(SecondFactorRefused):
        seal_change_approve(change=retire, notary=notary, token=code)  # the same code again
    retire.refresh_from_db()
    assert retire.state == "proposed"


def test_staff_can_propose_but_never_approve(notary_identity, staff) -> None:
    change = seal_change_propose(
        kind="add_break_glass_key", actor=staff, public_key=new_key(), label="a", reason="r"
    )
    with pytest.raises(PermissionDenied):
        seal_change_approve(change=change, notary=staff, token="123456")
    with pytest.raises(PermissionDenied):
        apply_transition(
            change, "approve", actor=staff, notary=staff, decision_reason="", decided_at=None
        )
    change.refresh_from_db()
    assert change.state == "proposed"
    assert signed_in_client(staff).get("/notary/seal-changes/").status_code == 403


def test_a_notary_cannot_approve_their_own_proposal_while_another_notary_exists(
    notary_identity, notary
) -> None:
    other = UserFactory(email="second@notaris.example", role=Role.NOTARY, organisation=None)
    change = seal_change_propose(
        kind="add_notary_key",
        actor=notary,
        notary=notary,
        public_key=new_key(),
        label="new laptop",
        reason="a second key",
    )
    with pytest.raises(PermissionDenied):
        seal_change_approve(change=change, notary=notary, token=fresh_code(notary))
    assert other.is_active


def test_the_only_notary_may_approve_their_own_key_rotation(notary_identity, notary) -> None:
    key = new_key()
    change = seal_change_propose(
        kind="add_notary_key", actor=notary, notary=notary, public_key=key, label="b", reason="r"
    )
    seal_change_approve(change=change, notary=notary, token=fresh_code(notary))
    assert key in recipients_text()


def test_retiring_a_key_stops_sealing_for_it(notary_identity, notary, staff, product) -> None:
    key = new_key()
    change = seal_change_propose(
        kind="add_break_glass_key", actor=staff, public_key=key, label="safe", reason="r"
    )
    seal_change_approve(change=change, notary=notary, token=fresh_code(notary))
    change.refresh_from_db()
    retire = seal_change_propose(
        kind="retire_key", actor=staff, recipient=change.recipient, reason="compromised"
    )
    seal_change_approve(change=retire, notary=notary, token=fresh_code(notary))
    assert key not in recipients_text()
    assert key not in deposit_through_pipeline(product=product, staff=staff).sealed_for


def test_a_rejection_needs_a_reason_and_changes_nothing(notary_identity, notary, staff) -> None:
    key = new_key()
    change = seal_change_propose(
        kind="add_break_glass_key", actor=staff, public_key=key, label="a", reason="r"
    )
    with pytest.raises(ValidationError):
        seal_change_reject(change=change, notary=notary, reason=" ")
    seal_change_reject(change=change, notary=notary, reason="I hold no such key")
    change.refresh_from_db()
    assert change.state == "rejected"
    assert key not in recipients_text()
    with pytest.raises(TransitionRefused):
        seal_change_approve(change=change, notary=notary, token=fresh_code(notary))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"public_key": "ssh-ed25519 AAAA"}, "starting with age1"),
        ({"reason": ""}, "This field is required"),
        ({"kind": "add_notary_key"}, "must name an active notary"),
    ],
)
def test_hostile_proposals_are_refused_with_a_message(
    notary_identity, staff, fields, message
) -> None:
    response = propose_in_admin(staff, new_key(), **fields)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SealRecipientChange.objects.exists()


def test_an_already_registered_key_cannot_be_proposed_again(notary_identity, staff) -> None:
    response = propose_in_admin(staff, notary_identity.recipient().to_string())
    assert "already registered" in response.content.decode()


def test_the_first_notary_is_bootstrapped_once_and_audited(db) -> None:
    key = new_key()
    notary, password = notary_bootstrap(
        email="first@notaris.example", full_name="First Notary", public_key=key, label="safe"
    )
    assert notary.role == Role.NOTARY and notary.check_password(password)
    assert NotaryRecipient.objects.get().public_key == key
    assert AuditEntry.objects.filter(action="notary.bootstrap").exists()
    with pytest.raises(TransitionRefused, match="runs once only"):
        notary_bootstrap(email="x@y.example", full_name="X", public_key=new_key(), label="s")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The embedded default in a folder of its own, whatever services the suite uses.
    prefixes = ("DJANGO_", "ESCROW_", "DATABASE_", "CELERY_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_bootstrap_command_refuses_a_second_run(tmp_path) -> None:
    env = {"ESCROW_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "true"}
    assert manage("migrate", "--no-input", **env).returncode == 0
    args = ["notary_bootstrap", "--email", "n@notaris.example", "--name", "N"]
    first = manage(*args, "--recipient", new_key(), **env)
    assert first.returncode == 0, first.stderr
    assert "One-time password" in first.stdout
    second = manage(*args, "--recipient", new_key(), **env)
    assert second.returncode != 0
    assert "runs once only" in second.stderr


def test_a_break_glass_key_from_the_environment_stops_start_up(tmp_path) -> None:
    result = manage("check", ESCROW_VAR_DIR=str(tmp_path), ESCROW_BREAK_GLASS_RECIPIENT=new_key())
    assert result.returncode != 0
    assert "ESCROW_BREAK_GLASS_RECIPIENT is no longer read" in result.stderr


def test_staff_may_withdraw_a_proposal_nobody_decided(notary_identity, staff) -> None:
    change = seal_change_propose(
        kind="add_break_glass_key", actor=staff, public_key=new_key(), label="a", reason="r"
    )
    seal_change_withdraw(change=change, actor=staff, reason="typo in the key")
    change.refresh_from_db()
    assert (change.state, change.decision_reason) == ("withdrawn", "typo in the key")


def test_a_proposal_is_validated_before_anything_is_recorded(notary_identity, notary) -> None:
    key = new_key()
    assert seal_change_validate(
        kind="add_notary_key",
        public_key=f" {key} ",
        label=" laptop ",
        notary=notary,
        recipient=None,
    ) == (key, "laptop", notary)
    with pytest.raises(ValidationError, match="Say where the identity is kept"):
        seal_change_validate(
            kind="add_break_glass_key", public_key=new_key(), label="", notary=None, recipient=None
        )
    with pytest.raises(ValidationError, match="Unknown change"):
        seal_change_validate(
            kind="add_my_key", public_key=key, label="x", notary=None, recipient=None
        )
    assert not SealRecipientChange.objects.exists()


def test_only_a_new_code_of_the_notarys_own_authenticator_passes(notary, staff) -> None:
    code = fresh_code(notary)
    check_fresh_code(notary, code)
    TOTPDevice.objects.get(user=notary).throttle_reset()
    with pytest.raises(SecondFactorRefused):
        check_fresh_code(notary, code)  # used once already
    with pytest.raises(SecondFactorRefused):
        check_fresh_code(staff, fresh_code(notary))  # staff have no such authenticator


def test_the_notary_sees_what_waits_oldest_first(notary_identity, staff) -> None:
    first = seal_change_propose(
        kind="add_break_glass_key", actor=staff, public_key=new_key(), label="a", reason="r"
    )
    second = seal_change_propose(
        kind="retire_key",
        actor=staff,
        recipient=NotaryRecipient.objects.get(),
        reason="rotating",
    )
    assert seal_changes_waiting() == [first, second]
    seal_change_withdraw(change=first, actor=staff)
    assert seal_changes_waiting() == [second]
