"""Every door's sign-in form asks for what people sign in with: an e-mail address."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("door", ["/portal/login/", "/notary/login/", "/admin/login/"])
def test_every_sign_in_asks_for_an_email_address_as_one(client, door: str) -> None:
    page = client.get(door).content.decode()
    field = re.search(r"<input[^>]*name=\"username\"[^>]*>", page)
    assert field is not None, page
    assert 'type="email"' in field.group(0)
    assert 'autocomplete="email"' in field.group(0)
