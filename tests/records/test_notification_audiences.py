"""Who a notification goes to: one organisation (a customer's contact and active
customer users; a vendor's contact address), every active notary, or every active
member of staff. A wrong combination is refused before anything is stored, and a
notification with nobody to send it to is not marked sent."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from accounts.models import Role
from records.models import Notification
from records.services.notifications import (
    NO_RECIPIENTS,
    notification_queue,
    notification_recipients,
    notification_send,
    notifications_send_pending,
)
from tests.factories import UserFactory

Audience = Notification.Audience


def queue(*, audience: str, organisation=None, subject: str = "Claim 7 is ready") -> Notification:
    return notification_queue(
        kind=Notification.Kind.RELEASE_CLAIM_READY,
        subject=subject,
        body="Claim 7 waits for your decision.",
        organisation=organisation,
        audience=audience,
    )


def test_every_active_notary_gets_a_notice_for_the_notaries(
    notary, subscriber, staff, mailoutbox
) -> None:
    second = UserFactory(email="second@notaris.example", role=Role.NOTARY, organisation=None)
    UserFactory(
        email="retired@notaris.example", role=Role.NOTARY, organisation=None, is_active=False
    )
    notification = queue(audience=Audience.NOTARIES)
    assert notification.organisation is None
    assert notification_send(notification=notification) is True
    (message,) = mailoutbox
    assert sorted(message.to) == sorted([notary.email, second.email])


def test_every_active_member_of_staff_gets_a_notice_for_staff(
    staff, notary, subscriber, mailoutbox
) -> None:
    UserFactory(email="left@acme.example", role=Role.STAFF, organisation=None, is_active=False)
    notification = queue(audience=Audience.STAFF)
    notification_send(notification=notification)
    (message,) = mailoutbox
    assert message.to == [staff.email]


def test_a_vendor_notice_goes_to_the_vendor_contact_address_only(
    vendor, subscriber, notary, staff, mailoutbox
) -> None:
    notification = queue(audience=Audience.ORGANISATION, organisation=vendor)
    assert notification_recipients(notification=notification) == [vendor.contact_email]
    notification_send(notification=notification)
    assert mailoutbox[0].to == [vendor.contact_email]


@pytest.mark.parametrize(
    ("audience", "with_organisation", "problem"),
    [
        (Audience.ORGANISATION, False, "needs the organisation"),
        (Audience.NOTARIES, True, "do not name"),
        (Audience.STAFF, True, "do not name"),
        ("everyone", False, "Unknown notification audience 'everyone'"),
    ],
)
def test_a_wrong_audience_is_refused_by_name_and_nothing_is_stored(
    organisation_a, audience, with_organisation, problem
) -> None:
    with pytest.raises(ValueError, match=problem):
        queue(audience=audience, organisation=organisation_a if with_organisation else None)
    assert not Notification.objects.exists()


def test_an_unknown_kind_is_refused_by_name(organisation_a) -> None:
    with pytest.raises(ValueError, match="Unknown notification kind 'release_claim_lost'"):
        notification_queue(
            kind="release_claim_lost", subject="x", body="y", organisation=organisation_a
        )
    assert not Notification.objects.exists()


@pytest.mark.parametrize("audience", [Audience.NOTARIES, Audience.STAFF])
def test_the_database_refuses_an_organisation_on_a_group_notice(organisation_a, audience) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(
            kind=Notification.Kind.EXPORT_FAILED,
            audience=audience,
            organisation=organisation_a,
            subject="x",
            body="y",
        )


def test_the_database_refuses_an_organisation_notice_without_one(db) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(
            kind=Notification.Kind.EXPORT_FAILED,
            audience=Audience.ORGANISATION,
            organisation=None,
            subject="x",
            body="y",
        )


def test_a_notice_with_nobody_to_send_it_to_stays_unsent_with_the_reason(
    db, mailoutbox, caplog, django_capture_on_commit_callbacks
) -> None:
    # No notary is enrolled yet: the old sender marked this "sent" to nobody.
    with django_capture_on_commit_callbacks(execute=False):
        notification = queue(audience=Audience.NOTARIES)
    with caplog.at_level(logging.WARNING, logger="records.services.notifications"):
        assert notification_send(notification=notification) is False
    notification.refresh_from_db()
    assert notification.sent_at is None
    assert notification.problem == NO_RECIPIENTS
    assert notification.attempts == 1
    assert mailoutbox == []
    assert f"notification {notification.pk}" in caplog.text
    assert "nobody to send it to" in caplog.text

    # A notary enrolled later still gets it from the outbox sweep, and the problem clears.
    notary = UserFactory(email="late@notaris.example", role=Role.NOTARY, organisation=None)
    assert notifications_send_pending(older_than=timedelta(0)) == 1
    notification.refresh_from_db()
    assert notification.sent_at is not None
    assert notification.problem == ""
    assert mailoutbox[0].to == [notary.email]


def test_the_sweep_does_not_count_a_notice_it_could_not_send(db, mailoutbox) -> None:
    queue(audience=Audience.STAFF)  # no staff at all
    assert notifications_send_pending(older_than=timedelta(0)) == 0
    assert Notification.objects.get().sent_at is None


def test_the_kinds_the_other_parts_use_exist() -> None:
    names = {
        "SUBSCRIPTION_CANCELLED",
        "SUBSCRIPTION_REACTIVATED",
        "REFUND_RECORDED",
        "RELEASE_CLAIM_RECEIVED",
        "RELEASE_CLAIM_CONTESTED",
        "RELEASE_CLAIM_READY",
        "RELEASE_CLAIM_OUTCOME",
        "RELEASE_CLAIM_WITHDRAWN",
        "EXPORT_FAILED",
    }
    assert names <= set(Notification.Kind.names)


def test_a_long_or_multi_line_subject_is_made_to_fit_not_refused(organisation_a) -> None:
    notification = notification_queue(
        kind=Notification.Kind.EXPORT_FAILED,
        subject="Data export of " + "Very Long Name B.V. " * 20 + "\r\nBcc: x@evil.example",
        body="b",
        organisation=organisation_a,
    )
    notification.refresh_from_db()
    assert len(notification.subject) == 200
    assert notification.subject.endswith("…")
    assert "\n" not in notification.subject and "\r" not in notification.subject
