"""Staff's attempts to become, impersonate or weaken a notary, through the real admin.

Each attempt is the one an attacker with a staff password tried; each is refused,
and afterwards a new deposit is sealed for exactly the recipients it was sealed
for before."""

from __future__ import annotations

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role, User
from escrow.models import NotaryRecipient
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.factories import PASSWORD
from tests.seal import fresh_code
from vault.age import X25519Identity

STAFF_KEY = X25519Identity.generate().recipient().to_string()


@pytest.fixture
def before(notary_identity, product, staff):
    """The recipients of a deposit made before staff try anything."""
    return deposit_through_pipeline(product=product, staff=staff, version="1.0.0").sealed_for


def test_every_attempt_is_refused_and_the_next_deposit_is_sealed_as_before(
    before, notary, product, staff, subscriber
) -> None:
    admin = signed_in_client(staff)

    # 1. Create a user with the notary role.
    created = admin.post(
        "/admin/accounts/user/add/",
        {
            "email": "fake-notary@acme.example",
            "full_name": "Fake Notary",
            "role": "notary",
            "password1": "a long enough password 123",
            "password2": "a long enough password 123",
        },
    )
    assert created.status_code == 200  # the form again, with an error on the role
    assert "Select a valid choice" in created.content.decode()
    assert not User.objects.filter(email="fake-notary@acme.example").exists()

    # 2. Give an existing customer the notary role.
    admin.post(
        f"/admin/accounts/user/{subscriber.pk}/change/",
        {
            "email": subscriber.email,
            "full_name": subscriber.full_name,
            "role": "notary",
            "organisation": subscriber.organisation_id,
            "is_active": "on",
        },
    )
    subscriber.refresh_from_db()
    assert subscriber.role == Role.CUSTOMER

    # 3. Add a seal recipient holding staff's own key.
    added = admin.post(
        "/admin/escrow/notaryrecipient/add/",
        {"kind": "notary", "notary": notary.pk, "label": "mine", "public_key": STAFF_KEY},
    )
    assert added.status_code == 403
    assert not NotaryRecipient.objects.filter(public_key=STAFF_KEY).exists()

    # 4. Set the real notary's password, or change the address a reset would go to.
    password = admin.post(
        f"/admin/accounts/user/{notary.pk}/password/",
        {"password1": "staff knows this 123", "password2": "staff knows this 123"},
    )
    assert password.status_code == 403
    admin.post(
        f"/admin/accounts/user/{notary.pk}/change/",
        {"email": "staff@acme.example.evil", "full_name": "x", "role": "notary", "is_active": "on"},
    )
    notary.refresh_from_db()
    assert notary.email == "notary@notaris.example"
    assert not notary.check_password("staff knows this 123")

    # 5. Read the notary's TOTP secret.
    device = TOTPDevice.objects.get(user=notary)
    for path in (
        f"/admin/otp_totp/totpdevice/{device.pk}/config/",
        f"/admin/otp_totp/totpdevice/{device.pk}/change/",
        "/admin/otp_totp/totpdevice/",
    ):
        assert admin.get(path).status_code == 404, path

    # 6. Use the notary portal as staff.
    assert admin.get("/notary/seal-changes/").status_code == 403

    after = deposit_through_pipeline(product=product, staff=staff, version="1.0.1")
    assert after.sealed_for == before
    assert STAFF_KEY not in after.manifest["sealed_for"]


def test_the_admin_needs_a_second_factor_not_just_a_password(staff) -> None:
    without_code = signed_in_client(staff, second_factor=False)
    response = without_code.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert signed_in_client(staff).get("/admin/").status_code == 200


def test_the_admin_login_form_asks_for_the_code(db) -> None:
    page = signed_in_client(None).get("/admin/login/").content.decode()
    assert 'name="otp_token"' in page


def test_staff_may_still_create_customers_and_staff(staff, organisation_a) -> None:
    admin = signed_in_client(staff)
    admin.post(
        "/admin/accounts/user/add/",
        {
            "email": "bob@northwind.example",
            "full_name": "Bob",
            "role": "customer",
            "organisation": organisation_a.pk,
            "password1": "a long enough password 123",
            "password2": "a long enough password 123",
        },
    )
    assert User.objects.get(email="bob@northwind.example").role == Role.CUSTOMER


def test_a_notary_made_outside_the_admin_is_shown_but_cannot_be_deleted(staff, notary) -> None:
    admin = signed_in_client(staff)
    assert admin.get(f"/admin/accounts/user/{notary.pk}/change/").status_code == 200
    assert (
        admin.post(f"/admin/accounts/user/{notary.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert User.objects.filter(pk=notary.pk).exists()


def test_staff_sign_in_with_password_and_code_and_not_with_the_password_alone(staff) -> None:
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    form = {"username": staff.email, "password": PASSWORD, "next": "/admin/"}
    refused = Client().post("/admin/login/", form | {"otp_token": "000000"})
    assert refused.status_code == 200 and "_auth_user_id" not in refused.wsgi_request.session
    TOTPDevice.objects.get(user=staff).throttle_reset()
    signed_in = Client()
    response = signed_in.post("/admin/login/", form | {"otp_token": fresh_code(staff)})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert signed_in.get("/admin/").status_code == 200
