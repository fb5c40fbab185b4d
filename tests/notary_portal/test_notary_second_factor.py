from __future__ import annotations

import re

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role
from records.models import AuditEntry
from tests.factories import PASSWORD, UserFactory


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def sign_in_with_password(client: Client, email: str) -> None:
    response = client.post("/notary/login/", {"username": email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/notary/verify/"


def test_a_password_alone_does_not_open_the_notary_portal(notary) -> None:
    client = Client()
    sign_in_with_password(client, notary.email)
    response = client.get("/notary/")
    assert response.status_code == 302
    assert response["Location"] == "/notary/verify/"


def test_the_right_code_opens_the_dashboard_and_is_audited(notary) -> None:
    client = Client()
    sign_in_with_password(client, notary.email)
    device = TOTPDevice.objects.get(user=notary)
    response = client.post("/notary/verify/", {"token": current_code(device)})
    assert response.status_code == 302
    assert response["Location"] == "/notary/"
    assert client.get("/notary/").status_code == 200
    assert AuditEntry.objects.filter(action="notary.second_factor_passed", actor=notary).exists()


@pytest.mark.parametrize("token", ["000000", "12345", "abcdef", "1234567", "' OR 1=1", ""])
def test_a_wrong_or_malformed_code_is_refused_with_a_message(notary, token) -> None:
    client = Client()
    sign_in_with_password(client, notary.email)
    device = TOTPDevice.objects.get(user=notary)
    if token == current_code(device):  # one in a million; keep the test honest
        token = f"{(int(token) + 1) % 1_000_000:06d}"
    response = client.post("/notary/verify/", {"token": token})
    assert response.status_code == 200
    assert re.search(r"not valid|six digits|at least 6|at most 6|required", response.text)
    assert client.get("/notary/").status_code == 302


def test_a_customer_password_does_not_sign_in_to_the_notary_portal(subscriber) -> None:
    client = Client()
    response = client.post("/notary/login/", {"username": subscriber.email, "password": PASSWORD})
    assert response.status_code == 200
    # The same words as a wrong password: the form does not confirm the password was right.
    assert "Please enter a correct email and password" in response.text
    assert "_auth_user_id" not in client.session


def test_a_notary_without_an_authenticator_enrols_by_scanning_a_code(db) -> None:
    newcomer = UserFactory(email="new@notaris.example", role=Role.NOTARY, organisation=None)
    client = Client()
    client.post("/notary/login/", {"username": newcomer.email, "password": PASSWORD})
    assert client.get("/notary/verify/")["Location"] == "/notary/enrol/"
    page = client.get("/notary/enrol/")
    assert page.status_code == 200
    assert "<svg" in page.text  # the QR code
    device = TOTPDevice.objects.get(user=newcomer, confirmed=False)
    secret = re.search(r'class="secret">([A-Z2-7]+)<', page.text)
    assert secret is not None

    wrong_code = "000000" if current_code(device) != "000000" else "111111"
    wrong = client.post("/notary/enrol/", {"token": wrong_code})
    assert "not valid" in wrong.text
    device.refresh_from_db()
    assert not device.confirmed

    device.throttle_reset()
    response = client.post("/notary/enrol/", {"token": current_code(device)})
    assert response["Location"] == "/notary/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/notary/").status_code == 200
    assert AuditEntry.objects.filter(action="notary.totp_enrolled", actor=newcomer).exists()


def test_enrolment_is_closed_once_an_authenticator_is_confirmed(notary) -> None:
    client = Client()
    sign_in_with_password(client, notary.email)
    response = client.get("/notary/enrol/")
    assert response["Location"] == "/notary/verify/"
    assert client.post("/notary/enrol/", {"token": "123456"})["Location"] == "/notary/verify/"
    assert TOTPDevice.objects.filter(user=notary).count() == 1


def test_the_enrolment_code_has_a_name_a_screen_reader_can_say(db) -> None:
    newcomer = UserFactory(email="new@notaris.example", role=Role.NOTARY, organisation=None)
    client = Client()
    client.post("/notary/login/", {"username": newcomer.email, "password": PASSWORD})
    page = client.get("/notary/enrol/").text
    figure = re.search(r'<div class="qr"([^>]*)>\s*<svg', page)
    assert figure is not None, page
    assert 'role="img"' in figure.group(1)
    assert 'aria-label="QR code of your authenticator' in figure.group(1)
