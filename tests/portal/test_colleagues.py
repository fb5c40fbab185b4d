"""Colleagues: an organisation admin invites a colleague by e-mail with an expiring
single-use link (only the token's hash is stored), revokes an invitation and removes a
colleague; non-admins see the list but get 403 on every control. Every step is audited."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, Role, User
from escrow.services.people import (
    colleague_remove,
    invitation_accept,
    invitation_days,
    invitation_for_token,
    invitation_problem,
    invitation_revoke,
    invitation_send,
    token_sha256,
)
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import UserFactory

URL = "/portal/colleagues/"
NEW_PASSWORD = "a long and unusual passphrase 42"


@pytest.fixture
def admin(subscriber: User) -> User:
    subscriber.is_organisation_admin = True
    subscriber.save(update_fields=["is_organisation_admin"])
    return subscriber


@pytest.fixture
def colleague(subscriber: User) -> User:
    return UserFactory(
        email="bob@northwind.example", full_name="Bob Smit", organisation=subscriber.organisation
    )


def test_an_admin_invites_and_the_colleague_joins(admin, django_capture_on_commit_callbacks):
    client = signed_in_client(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"email": "dave@northwind.example"}, follow=True)
    assert "Invitation sent to dave@northwind.example" in response.content.decode()
    [message] = mail.outbox  # sent once the invitation is committed
    token = re.search(r"/portal/invitation/([^/\s]+)/", message.body).group(1)
    assert message.to == ["dave@northwind.example"]
    assert "Northwind Logistics B.V." in message.subject
    assert "works once, until" in message.body and "UTC" in message.body
    invitation = Invitation.objects.get()
    # Only the hash is stored, never the token itself.
    assert invitation.token_sha256 == token_sha256(token)
    assert token not in str(Invitation.objects.values().get())
    assert len(token) >= 40
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)

    anonymous = Client()
    page = anonymous.get(f"/portal/invitation/{token}/").content.decode()
    assert "as a user of <strong>Northwind Logistics B.V.</strong>" in page
    response = anonymous.post(
        f"/portal/invitation/{token}/",
        {"full_name": "Dave Dekker", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/portal/login/"
    dave = User.objects.get(email="dave@northwind.example")
    assert (dave.role, dave.organisation, dave.is_organisation_admin) == (
        Role.CUSTOMER,
        admin.organisation,
        False,
    )
    assert dave.check_password(NEW_PASSWORD)
    # The link worked once.
    again = anonymous.get(f"/portal/invitation/{token}/").content.decode()
    assert "This invitation was already used" in again
    actions = list(AuditEntry.objects.order_by("sequence").values_list("action", flat=True))
    assert actions[-2:] == ["invitation.send", "invitation.accept"]
    listed = signed_in_client(admin).get(URL).content.decode()
    assert "Dave Dekker" in listed and "dave@northwind.example" in listed


def test_an_invitation_as_admin_makes_an_admin(admin) -> None:
    invitation_send(actor=admin, email="erin@northwind.example", as_admin=True)
    token = "t" * 43
    Invitation.objects.update(token_sha256=token_sha256(token))
    erin = invitation_accept(token=token, full_name="Erin", password=NEW_PASSWORD)
    assert erin.is_organisation_admin


def test_the_invitee_signs_in_through_the_login_form(admin) -> None:
    invitation_send(actor=admin, email="dave@northwind.example")
    token = "known-token-for-the-test-0123456789abcdef"
    Invitation.objects.update(token_sha256=token_sha256(token))
    invitation_accept(token=token, full_name="Dave", password=NEW_PASSWORD)
    response = Client().post(
        "/portal/login/", {"username": "dave@northwind.example", "password": NEW_PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/portal/"


def test_non_admins_see_the_list_but_no_controls_and_get_403(subscriber, colleague) -> None:
    client = signed_in_client(colleague)
    page = client.get(URL).content.decode()
    assert "Alice" in page or subscriber.full_name in page
    assert "Invite a colleague" not in page and "Remove " not in page
    assert client.post(URL, {"email": "x@northwind.example"}).status_code == 403
    assert client.post(f"/portal/colleagues/{subscriber.pk}/remove/").status_code == 403
    assert not Invitation.objects.exists()
    with pytest.raises(PermissionDenied):
        invitation_send(actor=colleague, email="x@northwind.example")


def test_an_admin_sees_controls(admin, colleague) -> None:
    page = signed_in_client(admin).get(URL).content.decode()
    assert "Invite a colleague" in page
    assert f"/portal/colleagues/{colleague.pk}/remove/" in page
    assert f"/portal/colleagues/{admin.pk}/remove/" not in page  # not oneself
    assert 'type="email"' in page
    assert '<label class="check"><input type="checkbox"' in page


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("bob@northwind.example", "is already a user of Northwind Logistics B.V."),
        ("CAROL@contoso.example", "already has an account with the escrow service"),
        ("notary@notaris.example", "already has an account with the escrow service"),
    ],
)
def test_inviting_someone_who_has_an_account_is_refused(
    admin, colleague, other_customer, notary, email, message
) -> None:
    page = signed_in_client(admin).post(URL, {"email": email}).content.decode()
    assert message in page
    assert not Invitation.objects.exists()
    assert not mail.outbox


def test_a_garbled_address_is_refused(admin) -> None:
    page = signed_in_client(admin).post(URL, {"email": "not an address"}).content.decode()
    assert "Enter a valid email address" in page
    with pytest.raises(ValidationError, match="is not an e-mail address"):
        invitation_send(actor=admin, email="nobody@")


@pytest.mark.parametrize("token", ["garbled", "x" * 43, "a/b", "../../admin", "%00", "x" * 500])
def test_a_garbled_or_forged_token_is_refused_clearly(db, token) -> None:
    response = Client().get(f"/portal/invitation/{token}/")
    if response.status_code == 404:  # a path Django does not route to the view at all
        return
    page = response.content.decode()
    assert "This invitation link is not valid" in page
    assert 'name="password1"' not in page
    refused = Client().post(
        f"/portal/invitation/{token}/",
        {"full_name": "Mallory", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert "This invitation link is not valid" in refused.content.decode()
    assert not User.objects.filter(full_name="Mallory").exists()
    assert invitation_for_token(token) is None


def test_an_expired_link_is_refused(admin) -> None:
    invitation = invitation_send(actor=admin, email="dave@northwind.example")
    token = "known-token-expired-0123456789abcdefghijk"
    Invitation.objects.update(
        token_sha256=token_sha256(token), expires_at=timezone.now() - timedelta(seconds=1)
    )
    invitation.refresh_from_db()
    assert "has expired" in invitation_problem(invitation)
    page = (
        Client()
        .post(
            f"/portal/invitation/{token}/",
            {"full_name": "Dave", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        .content.decode()
    )
    assert "This invitation has expired" in page
    assert not User.objects.filter(email="dave@northwind.example").exists()
    with pytest.raises(ValidationError, match="expired"):
        invitation_accept(token=token, full_name="Dave", password=NEW_PASSWORD)


def test_the_expiry_is_a_setting(admin, settings) -> None:
    settings.ESCROW_INVITATION_DAYS = 2
    assert invitation_days() == 2
    invitation = invitation_send(actor=admin, email="dave@northwind.example")
    assert invitation.expires_at - invitation.created_at == timedelta(days=2)


def test_weak_or_mismatched_passwords_are_refused(admin) -> None:
    invitation_send(actor=admin, email="dave@northwind.example")
    token = "known-token-weak-0123456789abcdefghijklmno"
    Invitation.objects.update(token_sha256=token_sha256(token))
    client = Client()
    url = f"/portal/invitation/{token}/"
    weak = client.post(url, {"full_name": "Dave", "password1": "123", "password2": "123"})
    assert "This password is too short" in weak.content.decode()
    differ = client.post(
        url, {"full_name": "Dave", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"}
    )
    assert "The two passwords differ" in differ.content.decode()
    assert not User.objects.filter(email="dave@northwind.example").exists()
    with pytest.raises(ValidationError):
        invitation_accept(token=token, full_name="Dave", password="password")
    # Still usable with a good password.
    invitation_accept(token=token, full_name="Dave", password=NEW_PASSWORD)


def test_an_address_that_got_an_account_meanwhile_is_refused(admin) -> None:
    invitation_send(actor=admin, email="dave@northwind.example")
    token = "known-token-taken-0123456789abcdefghijklmn"
    Invitation.objects.update(token_sha256=token_sha256(token))
    UserFactory(email="Dave@northwind.example", organisation=admin.organisation)
    with pytest.raises(ValidationError, match="already has an account"):
        invitation_accept(token=token, full_name="Dave", password=NEW_PASSWORD)


def test_inviting_again_replaces_the_earlier_link(admin) -> None:
    first = invitation_send(actor=admin, email="dave@northwind.example")
    second = invitation_send(actor=admin, email="dave@northwind.example")
    first.refresh_from_db()
    assert first.state == Invitation.State.REVOKED and second.is_pending


def test_an_admin_revokes_a_pending_invitation(admin) -> None:
    invitation = invitation_send(actor=admin, email="dave@northwind.example")
    token = "known-token-revoked-0123456789abcdefghijkl"
    Invitation.objects.update(token_sha256=token_sha256(token))
    client = signed_in_client(admin)
    assert f"/portal/invitations/{invitation.pk}/revoke/" in client.get(URL).content.decode()
    page = client.post(f"/portal/invitations/{invitation.pk}/revoke/", follow=True)
    assert "The invitation of dave@northwind.example is revoked" in page.content.decode()
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.REVOKED and invitation.revoked_by == admin
    assert (
        "was withdrawn by Northwind"
        in Client().get(f"/portal/invitation/{token}/").content.decode()
    )
    with pytest.raises(ValidationError, match="nothing to revoke"):
        invitation_revoke(actor=admin, invitation=invitation)
    assert AuditEntry.objects.filter(action="invitation.revoke").count() == 1


def test_another_organisations_invitation_and_users_are_out_of_reach(admin, other_customer) -> None:
    other_customer.is_organisation_admin = True
    other_customer.save(update_fields=["is_organisation_admin"])
    theirs = invitation_send(actor=other_customer, email="zoe@contoso.example")
    client = signed_in_client(admin)
    assert client.post(f"/portal/invitations/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/portal/colleagues/{other_customer.pk}/remove/").status_code == 404
    with pytest.raises(PermissionDenied):
        invitation_revoke(actor=admin, invitation=theirs)
    with pytest.raises(PermissionDenied):
        colleague_remove(actor=admin, colleague=other_customer)
    theirs.refresh_from_db()
    other_customer.refresh_from_db()
    assert theirs.is_pending and other_customer.is_active
    page = client.get(URL).content.decode()
    assert "zoe@contoso.example" not in page and "carol@contoso.example" not in page


def test_an_admin_removes_a_colleague_who_can_no_longer_sign_in(admin, colleague) -> None:
    client = signed_in_client(admin)
    colleague_client = signed_in_client(colleague)
    page = client.post(f"/portal/colleagues/{colleague.pk}/remove/", follow=True)
    assert "Bob Smit is removed and can no longer sign in" in page.content.decode()
    colleague.refresh_from_db()
    assert not colleague.is_active
    assert User.objects.filter(pk=colleague.pk).exists()  # deactivated, never deleted
    assert colleague_client.get("/portal/").status_code == 302  # the session is over
    entry = AuditEntry.objects.get(action="colleague.remove")
    assert entry.actor == admin and entry.object_id == str(colleague.pk)
    again = client.post(f"/portal/colleagues/{colleague.pk}/remove/", follow=True)
    assert "was already removed" in again.content.decode()


def test_an_admin_cannot_remove_themselves_or_the_last_admin(admin, colleague) -> None:
    page = signed_in_client(admin).post(f"/portal/colleagues/{admin.pk}/remove/", follow=True)
    assert "You cannot remove yourself" in page.content.decode()
    admin.refresh_from_db()
    assert admin.is_active
    # Another admin may remove this one, but the last one standing stays.
    colleague.is_organisation_admin = True
    colleague.save(update_fields=["is_organisation_admin"])
    colleague_remove(actor=colleague, colleague=admin)
    admin.refresh_from_db()
    assert not admin.is_active
    with pytest.raises(ValidationError, match="cannot remove yourself"):
        colleague_remove(actor=colleague, colleague=colleague)


def test_the_last_admin_rule_holds_in_the_service(admin, colleague) -> None:
    """An admin that is the only one left cannot be removed even by another path: a
    second admin deactivated meanwhile leaves none besides the target."""
    other = UserFactory(
        email="ivy@northwind.example", organisation=admin.organisation, is_organisation_admin=True
    )
    User.objects.filter(pk=admin.pk).update(is_active=False)  # e.g. staff deactivated them
    admin.refresh_from_db()
    colleague.is_organisation_admin = True
    colleague.save(update_fields=["is_organisation_admin"])
    colleague_remove(actor=colleague, colleague=other)
    User.objects.filter(pk=colleague.pk).update(is_organisation_admin=True)
    lone = UserFactory(
        email="joe@northwind.example", organisation=admin.organisation, is_organisation_admin=True
    )
    colleague_remove(actor=lone, colleague=colleague)
    with pytest.raises(ValidationError, match="last admin"):
        colleague_remove(actor=colleague, colleague=lone)


def test_the_controls_need_post_and_csrf(admin, colleague) -> None:
    client = signed_in_client(admin)
    assert client.get(f"/portal/colleagues/{colleague.pk}/remove/").status_code == 405
    strict = signed_in_client(admin)
    strict.handler.enforce_csrf_checks = True
    assert strict.post(f"/portal/colleagues/{colleague.pk}/remove/").status_code == 403
    assert strict.post(URL, {"email": "x@northwind.example"}).status_code == 403
    colleague.refresh_from_db()
    assert colleague.is_active and not Invitation.objects.exists()


def test_only_customers_can_be_organisation_admins(staff) -> None:
    staff.is_organisation_admin = True
    with pytest.raises(ValidationError, match="Only customer users can be organisation admins"):
        staff.full_clean(exclude=["password"])


def test_the_migration_makes_each_organisations_first_user_its_admin(
    subscriber, colleague, other_customer, staff
) -> None:
    migration = importlib.import_module(
        "accounts.migrations.0003_organisation_admins_and_invitations"
    )
    User.objects.update(is_organisation_admin=False)
    migration.first_customer_user_is_admin(django_apps, None)
    admins = set(User.objects.filter(is_organisation_admin=True).values_list("email", flat=True))
    assert admins == {subscriber.email, other_customer.email}
