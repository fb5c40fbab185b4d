"""A page that repeats one form for each of several colleagues: every label and radio
button works on its own colleague's form, never on the first one's (repeated fields
share their ids, so nothing may point at a field by id)."""

from __future__ import annotations

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role, User
from tests.conftest import signed_in_client
from tests.factories import UserFactory


@pytest.fixture
def colleagues(db: None) -> list[str]:
    emails = ["second@notaris.example", "third@notaris.example"]
    for email in emails:
        user = UserFactory(email=email, role=Role.NOTARY, organisation=None)
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return emails


def forms_of(html: str) -> list[str]:
    return re.findall(r"<form method=\"post\" action=\"/notary/colleagues/.*?</form>", html, re.S)


def test_each_colleague_form_labels_its_own_fields(notary: User, colleagues: list[str]) -> None:
    html = signed_in_client(notary).get("/notary/colleagues/").content.decode()
    forms = forms_of(html)
    assert len(forms) == 2
    for form in forms:
        assert "<legend>" in form  # the radio buttons are one named group
        radios = re.findall(r"<input type=\"radio\"[^>]*>", form)
        assert len(radios) == 2
        assert all(" id=" not in radio for radio in radios)
        # Every label holds its control instead of naming an id shared with other forms.
        assert " for=" not in form
        labels = re.findall(r"<label[^>]*>.*?</label>", form, re.S)
        assert len(labels) == 3
        assert all("<input" in label for label in labels)
