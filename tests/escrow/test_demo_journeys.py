"""The demo shows every journey on day one: a claim the notary can decide, a claim the
vendor contested, a lapsed subscription, an overdue invoice and a product whose last
deposit is stale, each reached through a printed link that opens for its user.

The demo lives its past under a moved clock; these tests check that the past it
leaves reads as one consistent timeline (audit log, invoice numbers, deadlines) and
that the schedule's first run today leaves every journey where it is."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from pypdf import PdfReader

from accounts.models import User
from billing.models import Invoice, Subscription
from billing.payments import payment_record
from billing.services import subscriptions_lapse_overdue, subscriptions_renew_due
from escrow.models import ClaimEvidence, Deposit, ReleaseClaim
from escrow.selectors import covered_products_overview
from escrow.services.claims import claim_eligibility_problem, claims_contest_elapsed
from escrow.services.evidence import evidence_open
from records.models import AuditEntry, Notification
from records.services.audit import audit_chain_verify
from tests.conftest import signed_in_client

SITE = "http://127.0.0.1:8123"  # as `make run PORT=8123` sets ESCROW_PUBLIC_URL


@pytest.fixture(autouse=True)
def _development(settings) -> None:
    """`manage.py demo` runs only with DEBUG on; `make run` sets the public address."""
    settings.DEBUG = True
    settings.ESCROW_PUBLIC_URL = SITE


@pytest.fixture
def output(tmp_path) -> str:
    out = io.StringIO()
    call_command("demo", password="demo-password-1", identity_file=tmp_path / "n.txt", stdout=out)
    return out.getvalue()


def claim_of(organisation: str) -> ReleaseClaim:
    return ReleaseClaim.objects.get(claimant__name=organisation, product__slug="ledger-pro")


def history(claim: ReleaseClaim) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(object_type="escrow.ReleaseClaim", object_id=str(claim.pk))
    )


def days_ago(moment) -> float:
    return (timezone.now() - moment) / timedelta(days=1)


@pytest.mark.django_db
def test_a_claim_whose_contest_period_ended_waits_for_the_notary(output) -> None:
    claim = claim_of("Northwind Logistics B.V.")
    assert claim.state == "under_review"
    assert claim.vendor_statement == ""
    assert claim.contest_deadline is not None and claim.contest_deadline < timezone.now()
    steps = {entry.to_state: entry for entry in history(claim) if entry.to_state}
    assert list(steps) == ["filed", "vendor_notified", "uncontested", "under_review"]
    # Filed weeks ago; moved on by the scheduler once the period ended, not before.
    assert days_ago(steps["filed"].created_at) > 14
    assert steps["uncontested"].created_at > claim.contest_deadline
    assert steps["uncontested"].actor_label == "system"
    # Its evidence is a real document, sealed and readable by the portal.
    (evidence,) = claim.evidence.all()
    assert evidence.side == ClaimEvidence.Side.CLAIMANT
    text = PdfReader(io.BytesIO(evidence_open(evidence))).pages[0].extract_text()
    assert "LP-4711" in text


@pytest.mark.django_db
def test_a_claim_the_vendor_contested_in_time_with_its_statement(output) -> None:
    claim = claim_of("Fabrikam Retail N.V.")
    assert claim.state == "under_review"
    assert "has not reached its end of life" in claim.vendor_statement
    assert sorted(claim.evidence.values_list("side", flat=True)) == ["claimant", "vendor"]
    contest = next(e for e in history(claim) if e.action == "releaseclaim.contest")
    assert contest.to_state == "contested"
    assert contest.actor_label == "vendor"
    assert claim.contest_deadline is not None
    assert claim.created_at < contest.created_at < claim.contest_deadline
    assert contest.created_at < timezone.now()


@pytest.mark.django_db
def test_a_subscription_that_lapsed_when_its_renewal_went_unpaid(output) -> None:
    subscription = Subscription.objects.get(
        licence__customer__name="Tailspin Travel B.V.", licence__product__slug="fleet-planner"
    )
    assert subscription.state == "lapsed"
    first, renewal = subscription.invoices.order_by("issued_on")
    assert first.is_settled
    assert (renewal.purpose, renewal.is_settled) == ("renewal", False)
    assert subscription.period_end is not None
    assert renewal.period_start == subscription.period_end
    assert renewal.due_on < timezone.localdate()
    actions = [
        (e.action, e.to_state)
        for e in AuditEntry.objects.filter(
            object_type="billing.Subscription", object_id=str(subscription.pk)
        )
    ]
    assert actions[-2:] == [("subscription.activate", "active"), ("subscription.lapse", "lapsed")]
    lapse = AuditEntry.objects.get(
        object_type="billing.Subscription", object_id=str(subscription.pk), to_state="lapsed"
    )
    grace = timedelta(days=settings.ESCROW_PAYMENT_GRACE_DAYS)
    assert lapse.created_at.date() > subscription.period_end + grace
    assert days_ago(lapse.created_at) >= 1


@pytest.mark.django_db
def test_an_invoice_that_is_overdue_but_not_yet_past_its_grace_period(output) -> None:
    subscription = Subscription.objects.get(licence__customer__name="Woodgrove Bank AG")
    assert subscription.state == "awaiting_payment"
    invoice = subscription.invoices.get()
    assert not invoice.is_settled
    assert invoice.due_on < timezone.localdate()
    assert invoice.issued_on == invoice.due_on - timedelta(days=settings.ESCROW_PAYMENT_TERMS_DAYS)


@pytest.mark.django_db
def test_a_product_whose_last_deposit_is_older_than_the_staleness_threshold(output) -> None:
    fabrikam = User.objects.get(email="frank@fabrikam.example").organisation
    assert fabrikam is not None
    overview = {row.product.slug: row for row in covered_products_overview(fabrikam)}
    payroll = overview["payroll-classic"]
    assert payroll.stale
    assert payroll.age_days is not None
    assert payroll.age_days > settings.ESCROW_STALE_DEPOSIT_DAYS
    assert payroll.latest is not None and payroll.latest.state == "acknowledged"
    assert not overview["ledger-pro"].stale  # the threshold, not every product


@pytest.mark.django_db
def test_the_past_reads_as_one_timeline(output) -> None:
    entries = list(AuditEntry.objects.order_by("sequence"))
    assert audit_chain_verify().intact
    assert [e.created_at for e in entries] == sorted(e.created_at for e in entries)
    assert entries[0].created_at < timezone.now() - timedelta(days=365)
    # Invoice numbers run from 1 without gaps in each year, in the order of issue.
    for year in set(Invoice.objects.values_list("year", flat=True)):
        invoices = list(Invoice.objects.filter(year=year).order_by("sequence"))
        assert [i.sequence for i in invoices] == list(range(1, len(invoices) + 1))
        assert all(i.issued_on.year == year for i in invoices)
        assert [i.issued_on for i in invoices] == sorted(i.issued_on for i in invoices)
    deposits = Deposit.objects.order_by("pk")
    assert [d.created_at for d in deposits] == sorted(d.created_at for d in deposits)
    notifications = Notification.objects.order_by("pk")
    assert notifications.count() > 10
    assert [n.created_at for n in notifications] == sorted(n.created_at for n in notifications)


@pytest.mark.django_db
def test_the_schedule_s_first_run_today_leaves_every_journey_where_it_is(output) -> None:
    states = {
        "claims": dict(ReleaseClaim.objects.values_list("pk", "state")),
        "subscriptions": dict(Subscription.objects.values_list("pk", "state")),
        "invoices": Invoice.objects.count(),
    }
    assert claims_contest_elapsed(now=timezone.now()) == []
    assert subscriptions_renew_due(today=timezone.localdate()) == []
    assert subscriptions_lapse_overdue(today=timezone.localdate()) == []
    assert states == {
        "claims": dict(ReleaseClaim.objects.values_list("pk", "state")),
        "subscriptions": dict(Subscription.objects.values_list("pk", "state")),
        "invoices": Invoice.objects.count(),
    }


@pytest.mark.django_db
def test_each_journey_s_printed_link_opens_for_its_user(output) -> None:
    ready = claim_of("Northwind Logistics B.V.")
    contested = claim_of("Fabrikam Retail N.V.")
    overdue = Invoice.objects.get(customer__name="Woodgrove Bank AG")
    contoso = User.objects.get(email="carol@contoso.example").organisation
    assert contoso is not None
    subscribe = f"/portal/licences/{contoso.licences.get().pk}/subscribe/"
    journeys = {
        # path: (who signs in, what the page shows)
        "/portal/": ("alice@northwind.example", "Ledger Pro"),
        f"/notary/claims/{ready.pk}/": ("notary@notaris.example", "LP-4711"),
        f"/notary/claims/{contested.pk}/": (
            "notary@notaris.example",
            "has not reached its end of life",
        ),
        "/notary/notifications/": ("notary@notaris.example", f"release claim #{ready.pk}"),
        "/portal/products/fleet-planner/": (
            "tom@tailspin.example",
            "not covered by an active escrow subscription",
        ),
        "/portal/invoices/": ("wendy@woodgrove.example", overdue.number),
        "/portal/products/payroll-classic/": ("frank@fabrikam.example", "3.2.0"),
        subscribe: ("carol@contoso.example", "Fleet Planner"),
        "/admin/": ("staff@acme.example", "Release claims"),
    }
    listed = output.split("Where each journey starts:", 1)[1]
    for path, (email, shown) in journeys.items():
        assert f"{SITE}{path}  signed in as {email}" in listed
        response = signed_in_client(User.objects.get(email=email)).get(path)
        assert response.status_code == 200, path
        assert shown in response.content.decode(), path
    assert len([line for line in listed.splitlines() if "signed in as" in line]) == len(journeys)


@pytest.mark.django_db
def test_the_journeys_lead_on_from_where_the_demo_leaves_them(output) -> None:
    staff = User.objects.get(email="staff@acme.example")
    # Tailspin: staff record the payment of the invoice the output names; it reactivates.
    number = re.search(r"staff record invoice (\S+)'s payment to reactivate", output)
    assert number is not None, output
    renewal = Invoice.objects.get(number=number.group(1))
    payment_record(
        invoice_number=renewal.number,
        amount=renewal.amount_due(),
        received_on=timezone.localdate(),
        actor=staff,
    )
    tailspin = Subscription.objects.get(licence__customer__name="Tailspin Travel B.V.")
    assert tailspin.state == "active"
    assert (tailspin.period_start, tailspin.period_end) == (
        renewal.period_start,
        renewal.period_end,
    )
    # Woodgrove: the overdue invoice, paid late, activates its subscription.
    overdue = Invoice.objects.get(customer__name="Woodgrove Bank AG")
    payment_record(
        invoice_number=overdue.number,
        amount=overdue.amount_due(),
        received_on=timezone.localdate(),
        actor=staff,
    )
    assert Subscription.objects.get(licence__customer__name="Woodgrove Bank AG").state == "active"
    # Fabrikam may claim Payroll Classic, whose deposits stopped.
    frank = User.objects.get(email="frank@fabrikam.example")
    assert frank.organisation is not None
    payroll = frank.organisation.licences.get(product__slug="payroll-classic").product
    assert claim_eligibility_problem(organisation=frank.organisation, product=payroll) == ""
