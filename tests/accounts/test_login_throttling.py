"""Throttled sign-in on every door (django-axes), through the real login views.

After AXES_FAILURE_LIMIT failures for a username, or from an address, the right
password is refused too, with a page saying how long to wait; the answer is the
same, byte for byte, for a username no account has. Each lock-out leaves one
audit row, and staff unlock with axes' management commands."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from records.models import AuditEntry
from records.services.audit import audit_chain_verify
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
WRONG = "not-the-password"
NOBODY = "nobody@nowhere.example"
HOME = "198.51.100.7"
ELSEWHERE = "203.0.113.9"

# door, the fixture of the person who uses it, where the right password leads
DOORS = [
    ("/portal/login/", "subscriber", "/portal/"),
    ("/notary/login/", "notary", "/notary/verify/"),
    ("/admin/login/", "staff", "/admin/"),
]
DOOR_IDS = ["portal", "notary", "admin"]


@pytest.fixture
def limit(settings: Any) -> int:
    return int(settings.AXES_FAILURE_LIMIT)


@pytest.fixture
def cool_off(settings: Any) -> timedelta:
    return settings.AXES_COOLOFF_TIME  # type: ignore[no-any-return]


def sign_in(door: str, username: str, password: str, address: str = HOME) -> Any:
    return Client(REMOTE_ADDR=address).post(door, {"username": username, "password": password})


def signed_in(response: Any, landing: str) -> bool:
    return response.status_code == 302 and response["Location"] == landing


def assert_locked_out(response: Any, cool_off: timedelta) -> None:
    minutes = int(cool_off.total_seconds() // 60)
    assert response.status_code == 429
    assert f"Wait {minutes} minutes, then try again." in response.text
    assert response["Retry-After"] == str(minutes * 60)
    assert "_auth_user_id" not in response.wsgi_request.session


def fail(door: str, username: str, times: int, address: str = HOME) -> list[Any]:
    return [sign_in(door, username, WRONG, address) for _ in range(times)]


@pytest.mark.parametrize(("door", "persona", "landing"), DOORS, ids=DOOR_IDS)
def test_after_the_limit_the_right_password_is_refused_at_each_door(
    request, door, persona, landing, limit, cool_off
) -> None:
    user = request.getfixturevalue(persona)
    *before, last = fail(door, user.email, limit)
    # The failures before the limit get the door's usual wrong-password answer.
    assert [response.status_code for response in before] == [200] * (limit - 1)
    assert "correct email and password" in before[0].text
    # The one that reaches it already gets the lock-out page, and so does the right password.
    assert_locked_out(last, cool_off)
    assert_locked_out(sign_in(door, user.email, PASSWORD), cool_off)


@pytest.mark.parametrize(("door", "persona", "landing"), DOORS, ids=DOOR_IDS)
def test_an_unknown_username_gets_the_very_same_answer(
    request, door, persona, landing, limit
) -> None:
    user = request.getfixturevalue(persona)
    known = fail(door, user.email, limit, address=HOME)[-1]
    unknown = fail(door, NOBODY, limit, address=ELSEWHERE)[-1]
    assert (known.status_code, known.content) == (unknown.status_code, unknown.content)
    right = sign_in(door, user.email, PASSWORD, address=HOME)
    guessed = sign_in(door, NOBODY, PASSWORD, address=ELSEWHERE)
    assert (right.status_code, right.content) == (guessed.status_code, guessed.content)
    assert right.status_code == 429


@pytest.mark.parametrize(("door", "persona", "landing"), DOORS, ids=DOOR_IDS)
def test_the_page_says_how_long_to_wait_in_the_doors_own_frame(
    request, door, persona, landing, limit
) -> None:
    user = request.getfixturevalue(persona)
    page = fail(door, user.email, limit)[-1].text
    frame = {"portal": "Customer portal", "notary": "Notary portal", "admin": "Staff"}
    assert f"Software Escrow · {frame[door.split('/')[1]]}" in page
    assert "Too many sign-in attempts" in page
    assert f'<a href="{door}">Back to sign-in</a>' in page
    assert user.email not in page
    assert "csrfmiddlewaretoken" not in page


def test_an_address_is_locked_whatever_usernames_it_tries(subscriber, limit, cool_off) -> None:
    for n in range(limit):
        sign_in("/portal/login/", f"guess{n}@northwind.example", WRONG, address=HOME)
    assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD, HOME), cool_off)
    # The lock is on the address: the username itself was never tried, and other
    # addresses still get in.
    assert signed_in(sign_in("/portal/login/", subscriber.email, PASSWORD, ELSEWHERE), "/portal/")


def test_a_username_is_locked_from_every_address(subscriber, limit, cool_off) -> None:
    for n in range(limit):
        sign_in("/portal/login/", subscriber.email, WRONG, address=f"192.0.2.{n + 1}")
    assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD, ELSEWHERE), cool_off)


def test_failures_at_one_door_count_at_the_others(subscriber, limit, cool_off) -> None:
    doors = [door for door, _, _ in DOORS]
    for n in range(limit - 1):
        sign_in(doors[n % len(doors)], subscriber.email, WRONG)
    assert_locked_out(sign_in("/notary/login/", subscriber.email, WRONG), cool_off)
    assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD), cool_off)


@pytest.mark.parametrize("door", ["/notary/login/", "/admin/login/"], ids=["notary", "admin"])
def test_a_right_password_at_the_wrong_door_counts_as_a_failure(
    door, subscriber, limit, cool_off
) -> None:
    # Otherwise the one guess that did not bring the lock-out nearer would be the right one.
    *before, last = [sign_in(door, subscriber.email, PASSWORD) for _ in range(limit)]
    assert {response.status_code for response in before} == {200}
    assert_locked_out(last, cool_off)
    assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD), cool_off)


def test_after_the_cooling_off_period_the_right_password_works(subscriber, limit, cool_off) -> None:
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        fail("/portal/login/", subscriber.email, limit)
        traveller.shift(cool_off - timedelta(minutes=1))
        # Still locked; and this attempt starts the wait again, as the page says.
        assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD), cool_off)
        traveller.shift(cool_off - timedelta(minutes=1))
        assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD), cool_off)
        traveller.shift(cool_off + timedelta(seconds=1))
        assert signed_in(sign_in("/portal/login/", subscriber.email, PASSWORD), "/portal/")


def test_each_lock_out_leaves_one_audit_row(subscriber, limit) -> None:
    fail("/portal/login/", subscriber.email, limit + 3)
    sign_in("/portal/login/", subscriber.email, PASSWORD)
    rows = list(AuditEntry.objects.filter(action="login.locked_out"))
    assert len(rows) == 1, "attempts refused during a lock-out write no further rows"
    assert rows[0].details == {
        "username": subscriber.email,
        "ip_address": HOME,
        "locked_by": ["username", "ip_address"],
        "path": "/portal/login/",
    }
    assert rows[0].actor is None
    assert rows[0].actor_label == "anonymous"

    # A second lock-out, of another address only, trying many usernames at the admin.
    for n in range(limit):
        sign_in("/admin/login/", f"guess{n}@acme.example", WRONG, address=ELSEWHERE)
    newest = AuditEntry.objects.filter(action="login.locked_out").order_by("-sequence").first()
    assert newest is not None
    assert newest.details == {
        "username": f"guess{limit - 1}@acme.example",
        "ip_address": ELSEWHERE,
        "locked_by": ["ip_address"],
        "path": "/admin/login/",
    }
    assert AuditEntry.objects.filter(action="login.locked_out").count() == 2
    assert audit_chain_verify().intact


def test_staff_unlock_a_username_with_axes_reset_username(subscriber, limit, cool_off) -> None:
    fail("/portal/login/", subscriber.email, limit)
    assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD), cool_off)
    call_command("axes_reset_username", subscriber.email, stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert not AccessAttempt.objects.filter(username=subscriber.email).exists()
    assert signed_in(sign_in("/portal/login/", subscriber.email, PASSWORD), "/portal/")


def test_staff_unlock_an_address_with_axes_reset_ip(subscriber, limit, cool_off) -> None:
    for n in range(limit):
        sign_in("/portal/login/", f"guess{n}@northwind.example", WRONG, address=HOME)
    assert_locked_out(sign_in("/portal/login/", subscriber.email, PASSWORD, HOME), cool_off)
    call_command("axes_reset_ip", HOME, stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert signed_in(sign_in("/portal/login/", subscriber.email, PASSWORD, HOME), "/portal/")


def test_the_address_is_the_one_the_deposit_api_trusts(settings, subscriber) -> None:
    # No trusted proxy: a client's own X-Forwarded-For is ignored.
    Client(REMOTE_ADDR=HOME, HTTP_X_FORWARDED_FOR="10.9.9.9").post(
        "/portal/login/", {"username": subscriber.email, "password": WRONG}
    )
    # One trusted proxy: the address it saw, not what the client put before it.
    settings.ESCROW_TRUSTED_PROXIES = 1
    Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"10.9.9.9, {ELSEWHERE}").post(
        "/portal/login/", {"username": subscriber.email, "password": WRONG}
    )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HOME, ELSEWHERE}


def test_the_limit_and_the_cooling_off_come_from_the_environment(tmp_path) -> None:
    def settings_with(**env: str) -> subprocess.CompletedProcess[str]:
        code = (
            "from django.conf import settings as s; "
            "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)"
        )
        return subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
            cwd=ROOT,
            env=os.environ | {"ESCROW_VAR_DIR": str(tmp_path)} | env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = settings_with(ESCROW_LOGIN_FAILURE_LIMIT="3", ESCROW_LOGIN_COOLOFF_MINUTES="60")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "3 1:00:00"
    result = settings_with(ESCROW_LOGIN_FAILURE_LIMIT="0")
    assert "ESCROW_LOGIN_FAILURE_LIMIT must be at least 1" in result.stderr
    result = settings_with(ESCROW_LOGIN_COOLOFF_MINUTES="a quarter of an hour")
    assert "ESCROW_LOGIN_COOLOFF_MINUTES must be a whole number" in result.stderr
