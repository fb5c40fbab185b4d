"""The notary's Notifications page lists the notices sent to every notary, and
nothing that was for a customer, the vendor or staff."""

from __future__ import annotations

from records.models import Notification
from records.services.notifications import notification_queue
from tests.conftest import signed_in_client

Kind = Notification.Kind
Audience = Notification.Audience


def test_a_notary_sees_the_notaries_notices_only(
    notary, subscriber, organisation_a, vendor, staff, mailoutbox
) -> None:
    notification_queue(
        kind=Kind.RELEASE_CLAIM_READY,
        subject="Claim 7 is ready for your review",
        body="The contest period of claim 7 ended on 2026-01-16.",
        audience=Audience.NOTARIES,
    )
    notification_queue(
        kind=Kind.INVOICE_ISSUED,
        subject="Invoice for Northwind",
        body="b",
        organisation=organisation_a,
    )
    notification_queue(
        kind=Kind.RELEASE_CLAIM_FILED, subject="Claim for the vendor", body="b", organisation=vendor
    )
    notification_queue(
        kind=Kind.EXPORT_FAILED, subject="Staff: export failed", body="b", audience=Audience.STAFF
    )
    page = signed_in_client(notary).get("/notary/notifications/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Claim 7 is ready for your review" in html
    assert "Release claim ready for review" in html
    assert "ended on 2026-01-16" in html
    for hidden in ("Invoice for Northwind", "Claim for the vendor", "Staff: export failed"):
        assert hidden not in html
    assert 'href="/notary/notifications/"' in html  # the nav link


def test_the_page_needs_the_second_factor_and_the_notary_role(notary, subscriber, staff) -> None:
    unverified = signed_in_client(notary, second_factor=False).get("/notary/notifications/")
    assert unverified.status_code == 302
    assert unverified["Location"] == "/notary/verify/"
    assert signed_in_client(subscriber).get("/notary/notifications/").status_code == 403
    assert signed_in_client(staff).get("/notary/notifications/").status_code == 403


def test_staff_read_every_notification_in_the_admin_but_cannot_change_one(
    staff, organisation_a, notary
) -> None:
    notification = notification_queue(
        kind=Kind.RELEASE_CLAIM_READY, subject="Ready", body="b", audience=Audience.NOTARIES
    )
    notification_queue(
        kind=Kind.INVOICE_ISSUED, subject="Inv", body="b", organisation=organisation_a
    )
    client = signed_in_client(staff)
    listing = client.get("/admin/records/notification/?audience__exact=notaries")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "Ready" in html and ">Inv<" not in html
    change = client.get(f"/admin/records/notification/{notification.pk}/change/")
    assert change.status_code == 200
    assert 'name="subject"' not in change.content.decode()  # read-only
    assert client.post(f"/admin/records/notification/{notification.pk}/delete/").status_code == 403
