"""The customer's Notifications page lists the organisation's own notifications,
newest first, 50 to a page; never another organisation's, the vendor's, the
notaries' or staff's."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine

from records.models import Notification
from records.services.notifications import notification_queue
from tests.conftest import signed_in_client

Kind = Notification.Kind
Audience = Notification.Audience


def notice(subject: str, **kwargs) -> Notification:
    return notification_queue(
        kind=kwargs.pop("kind", Kind.INVOICE_ISSUED),
        subject=subject,
        body=kwargs.pop("body", f"The body of {subject}."),
        **kwargs,
    )


def test_a_customer_sees_its_own_notifications_newest_first(
    organisation_a, subscriber, mailoutbox
) -> None:
    with time_machine.travel(datetime(2026, 3, 1, 9, tzinfo=UTC), tick=False):
        notice("Invoice 2026-00001", organisation=organisation_a)
    with time_machine.travel(datetime(2026, 3, 2, 9, tzinfo=UTC), tick=False):
        notice(
            "Your data export failed",
            organisation=organisation_a,
            kind=Kind.EXPORT_FAILED,
            body="The export could not be built: <script>alert(1)</script>",
        )
    page = signed_in_client(subscriber).get("/portal/notifications/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("Your data export failed") < html.index("Invoice 2026-00001")
    assert "Data export failed" in html  # the kind's label
    assert "2 Mar 2026" in html
    # The body is shown as text, never as markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert 'href="/portal/notifications/"' in html  # the nav link


def test_no_other_party_s_notification_is_listed(
    organisation_a, organisation_b, vendor, subscriber, other_customer
) -> None:
    notice("For Northwind", organisation=organisation_a)
    notice("For Contoso", organisation=organisation_b)
    notice("For the vendor", organisation=vendor, kind=Kind.RELEASE_CLAIM_FILED)
    notice("For the notaries", audience=Audience.NOTARIES, kind=Kind.RELEASE_CLAIM_READY)
    notice("For staff", audience=Audience.STAFF, kind=Kind.EXPORT_FAILED)

    northwind = signed_in_client(subscriber).get("/portal/notifications/").content.decode()
    assert "For Northwind" in northwind
    for hidden in ("For Contoso", "For the vendor", "For the notaries", "For staff"):
        assert hidden not in northwind
    # Nothing in the address chooses the organisation.
    tampered = signed_in_client(other_customer).get(
        f"/portal/notifications/?organisation={organisation_a.pk}&organisation_id="
        f"{organisation_a.pk}"
    )
    assert tampered.status_code == 200
    assert "For Contoso" in tampered.content.decode()
    assert "For Northwind" not in tampered.content.decode()


def test_fifty_to_a_page_and_a_hostile_page_number_is_harmless(organisation_a, subscriber) -> None:
    for number in range(1, 53):
        notice(f"Notice number {number:03}", organisation=organisation_a)
    client = signed_in_client(subscriber)
    first = client.get("/portal/notifications/").content.decode()
    assert first.count("<summary>Notice number") == 50
    assert "Notice number 052" in first and "Notice number 002" not in first
    assert "Page 1 of 2" in first
    second = client.get("/portal/notifications/?page=2").content.decode()
    assert second.count("<summary>Notice number") == 2
    assert "Notice number 001" in second and "Notice number 002" in second
    for hostile in ("0", "-1", "999999", "abc", "1' OR '1'='1", "%00"):
        page = client.get("/portal/notifications/", {"page": hostile})
        assert page.status_code == 200, hostile
        assert "Notice number" in page.content.decode()


def test_an_organisation_without_notifications_says_so(organisation_b, other_customer) -> None:
    page = signed_in_client(other_customer).get("/portal/notifications/")
    assert "No notifications yet." in page.content.decode()
