"""Rule 4 of docs/billing.md: cancelling needs a confirmation page that says what
happens; paid cover runs to the end of its period, nothing renews, and a scheduled
job ends the subscription then. Cancelling tells the customer and staff."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from billing.models import Invoice, Subscription
from billing.services import (
    subscription_cancel_at_period_end,
    subscriptions_end_cancelled,
    subscriptions_lapse_overdue,
    subscriptions_renew_due,
)
from records.models import AuditEntry, Notification
from tests.billing.lifecycle import at, pay, run_billing_schedule, subscribe
from tests.conftest import signed_in_client
from tests.factories import UserFactory, make_acknowledged_deposit


@pytest.fixture(autouse=True)
def _terms(settings) -> None:
    settings.ESCROW_PAYMENT_TERMS_DAYS = 30
    settings.ESCROW_PAYMENT_GRACE_DAYS = 30
    settings.ESCROW_RENEWAL_NOTICE_DAYS = 30


@pytest.fixture
def paid(licence, subscriber) -> Subscription:
    """Subscribed and paid on 1 January 2027: covered until 31 December 2027."""
    with at(2027, 1, 1):
        subscription, invoice = subscribe(licence, subscriber)
        pay(invoice, on=date(2027, 1, 1))
    subscription.refresh_from_db()
    return subscription


def test_the_confirmation_page_says_what_happens_and_a_bare_post_cancels_nothing(
    paid, subscriber
) -> None:
    """Edge 3: cancel was one click on a bare POST."""
    url = f"/portal/subscriptions/{paid.pk}/cancel/"
    with at(2027, 3, 1):
        customer = signed_in_client(subscriber)
        page = customer.get(url).content.decode()
        assert "continues until 31 December 2027" in page
        assert "not renewed" in page
        assert "no automatic refund" in page
        assert "credit note" in page
        bare = customer.post(url)
    assert bare.status_code == 200
    assert "Tick the box to confirm the cancellation." in bare.content.decode()
    paid.refresh_from_db()
    assert (paid.state, paid.cancelled_at) == ("active", None)
    assert not AuditEntry.objects.filter(action__startswith="subscription.cancel").exists()


def test_a_confirmed_cancellation_keeps_cover_to_the_period_end_and_tells_everyone(
    paid, subscriber, staff, product, notary, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    """Edge 3: minutes after paying, a customer who clicked cancel lost cover and saw the
    deposits vanish, with no confirmation, no credit note and no e-mail."""
    make_acknowledged_deposit(product=product, notary=notary, version="4.2.0")
    with at(2027, 3, 1):
        customer = signed_in_client(subscriber)
        with django_capture_on_commit_callbacks(execute=True):
            response = customer.post(
                f"/portal/subscriptions/{paid.pk}/cancel/", {"confirm": "on"}, follow=True
            )
        dashboard = response.content.decode()
    assert "cover continues until 31 December 2027" in dashboard
    assert "cancelled — cover until 31 Dec 2027" in dashboard
    assert "4.2.0" in dashboard  # the deposits stay listed
    paid.refresh_from_db()
    assert (paid.state, paid.cancelled_by) == ("active", subscriber)
    assert paid.is_ending
    entry = AuditEntry.objects.get(action="subscription.cancel_at_period_end")
    assert entry.actor == subscriber
    to_customer = Notification.objects.get(kind="subscription_cancelled", audience="organisation")
    to_staff = Notification.objects.get(kind="subscription_cancelled", audience="staff")
    assert "continues until 31 December 2027" in to_customer.body
    assert "no renewal" in to_staff.body
    recipients = {address for message in mailoutbox for address in message.to}
    assert subscriber.email in recipients and staff.email in recipients


def test_a_cancelled_subscription_is_not_renewed_and_ends_when_its_period_does(
    paid, subscriber
) -> None:
    with at(2027, 3, 1):
        subscription_cancel_at_period_end(subscription=paid, actor=subscriber)
    with at(2027, 12, 2):
        assert subscriptions_renew_due(today=date(2027, 12, 2)) == []
    with at(2027, 12, 31, 23):
        run_billing_schedule()
    paid.refresh_from_db()
    assert paid.state == "active"  # the last covered day
    with at(2028, 1, 1, 0):
        run_billing_schedule()
    paid.refresh_from_db()
    assert paid.state == "cancelled"
    entry = AuditEntry.objects.get(action="subscription.end")
    assert (entry.from_state, entry.to_state, entry.actor) == ("active", "cancelled", None)
    assert "ended after 31 December 2027" in (
        Notification.objects.filter(kind="subscription_cancelled").order_by("pk").last().body
    )
    assert not Invoice.objects.filter(purpose="renewal").exists()
    with at(2028, 3, 1):
        assert subscriptions_lapse_overdue(today=date(2028, 3, 1)) == []  # ended, not lapsed


def test_cancelling_after_the_renewal_was_invoiced_credits_that_renewal(paid, subscriber) -> None:
    with at(2027, 12, 2):
        (renewal,) = subscriptions_renew_due(today=date(2027, 12, 2))
    with at(2027, 12, 10):
        subscription_cancel_at_period_end(subscription=paid, actor=subscriber)
    renewal.refresh_from_db()
    assert renewal.amount_due() == 0
    (note,) = renewal.credit_notes.all()
    assert note.total == -renewal.total
    assert "not renewed" in note.lines.get().description


def test_a_subscription_awaiting_payment_cancels_at_once_and_its_invoice_is_credited(
    licence, subscriber
) -> None:
    with at(2027, 3, 1):
        subscription, invoice = subscribe(licence, subscriber)
        customer = signed_in_client(subscriber)
        page = customer.get(f"/portal/subscriptions/{subscription.pk}/cancel/").content.decode()
        assert "ends <strong>at once</strong>" in page
        assert f"Invoice {invoice.number}" in page and "is credited" in page
        customer.post(f"/portal/subscriptions/{subscription.pk}/cancel/", {"confirm": "on"})
    subscription.refresh_from_db()
    assert subscription.state == "cancelled"
    invoice.refresh_from_db()
    assert invoice.amount_due() == 0
    assert invoice.credit_notes.count() == 1


def test_cancelling_twice_is_refused_with_a_clear_message(paid, subscriber) -> None:
    with at(2027, 3, 1):
        subscription_cancel_at_period_end(subscription=paid, actor=subscriber)
        with pytest.raises(ValidationError, match="cancelled already; cover ends after 31"):
            subscription_cancel_at_period_end(subscription=paid, actor=subscriber)
        page = signed_in_client(subscriber).get(f"/portal/subscriptions/{paid.pk}/cancel/")
    assert "cancelled already" in page.content.decode()
    assert 'name="confirm"' not in page.content.decode()


def test_another_organisation_cannot_cancel(paid, other_customer, organisation_a) -> None:
    with at(2027, 3, 1):
        assert (
            signed_in_client(other_customer)
            .post(f"/portal/subscriptions/{paid.pk}/cancel/", {"confirm": "on"})
            .status_code
            == 404
        )
        with pytest.raises(PermissionDenied):
            subscription_cancel_at_period_end(subscription=paid, actor=other_customer)
        colleague = UserFactory(organisation=organisation_a)
        subscription_cancel_at_period_end(subscription=paid, actor=colleague)
    paid.refresh_from_db()
    assert paid.cancelled_by == colleague


def test_subscriptions_end_cancelled_leaves_uncancelled_ones_alone(paid) -> None:
    with at(2028, 1, 1):
        assert subscriptions_end_cancelled(today=date(2028, 1, 1)) == []
    paid.refresh_from_db()
    assert paid.state == "active"
