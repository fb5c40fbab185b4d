"""`manage.py demo --scale`: years of history in bulk on top of the demo, for measuring
lists at scale (issue 14), keeping every invariant the services keep: the audit hash
chain, gap-free invoice numbers in date order, signed manifests and receipts, one open
claim per organisation and product."""

from __future__ import annotations

import io
from collections import defaultdict

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Q
from django.urls import reverse

from accounts.models import User
from billing.models import Invoice, InvoiceCounter, Payment
from escrow.demo_scale import SCALE_BUILD_URL, ScaleCounts, ScaleRefused, demo_scale
from escrow.models import ClaimState, Deposit, DepositAcknowledgement, DepositCopy, ReleaseClaim
from escrow.models.claims import OPEN_STATES
from records.models import AuditEntry, Notification
from records.services.audit import audit_chain_verify
from tests.conftest import signed_in_client
from vault.keys import system_signing_key
from vault.manifest import verify_manifest


@pytest.fixture(autouse=True)
def _development(settings) -> None:
    settings.DEBUG = True


def run_demo(tmp_path, *args: str) -> str:
    out = io.StringIO()
    call_command(
        "demo", *args, password="demo-password-1", identity_file=tmp_path / "n.txt", stdout=out
    )
    return out.getvalue()


def seeded_deposits():
    return Deposit.objects.filter(pipeline__build_url__startswith=SCALE_BUILD_URL)


@pytest.mark.django_db
def test_scale_adds_the_counts_asked_for_and_keeps_every_invariant(tmp_path) -> None:
    run_demo(tmp_path)
    before = {
        "claims": ReleaseClaim.objects.count(),
        "invoices": Invoice.objects.filter(kind=Invoice.Kind.INVOICE).count(),
        "notifications": Notification.objects.count(),
        "audit": AuditEntry.objects.count(),
    }
    output = run_demo(tmp_path, "--scale", "0.01", "--claims", "25", "--audit-entries", "900")

    assert "Scaled demo history added: 100 deposits, 25 release claims, 50 invoices" in output
    assert seeded_deposits().count() == 100
    assert ReleaseClaim.objects.count() == before["claims"] + 25
    assert Invoice.objects.filter(kind=Invoice.Kind.INVOICE).count() == before["invoices"] + 50
    assert Notification.objects.count() == before["notifications"] + 30
    # The lifecycles of the seeded rows, filled up with read access to the number asked.
    assert "30 notifications, 900 audit entries." in output
    assert AuditEntry.objects.count() - before["audit"] >= 900  # and the demo's own run's

    # The chain still verifies: every seeded entry links to the one before it.
    report = audit_chain_verify(anchors=())
    assert report.intact, report.problem
    assert report.checked == AuditEntry.objects.count()

    # A realistic mix: most deposits acknowledged, some in each other state.
    states = dict(seeded_deposits().values_list("state").annotate(n=Count("pk")))
    assert states["acknowledged"] > 50
    assert set(states) <= {"acknowledged", "replicated", "stored", "failed", "rejected"}
    # Copies in every site once replicated; the notary's receipt once acknowledged.
    replicated = seeded_deposits().filter(state__in=["replicated", "acknowledged"])
    assert DepositCopy.objects.filter(deposit__in=replicated).count() == replicated.count() * 6
    assert not DepositCopy.objects.filter(deposit__in=seeded_deposits().filter(state="rejected"))
    # A deposit whose replication failed is in the primary site only, not yet read back.
    unreplicated = seeded_deposits().filter(Q(state="stored") | Q(failed_from="stored"))
    for deposit in unreplicated:
        assert {(c.site, c.verified_at is None) for c in deposit.copies.filter(kind="sealed")} == {
            ("primary", True)
        }
    acknowledged = seeded_deposits().filter(state="acknowledged")
    assert DepositAcknowledgement.objects.filter(deposit__in=acknowledged).count() == (
        acknowledged.count()
    )
    # Manifests and receipts are signed with the system key, like the real ones.
    key = system_signing_key().public_key()
    deposit = acknowledged.select_related("acknowledgement").first()
    assert deposit is not None
    verify_manifest(deposit.manifest, deposit.manifest_signature, key)
    receipt = deposit.acknowledgement
    verify_manifest(receipt.receipt, receipt.signature, key)
    # Every seeded deposit has its audit trail, ending in its state.
    last = AuditEntry.objects.filter(object_type="escrow.Deposit", object_id=str(deposit.pk))
    assert last.order_by("-sequence").first().to_state == "acknowledged"

    # Claims in many states, never two open ones for one organisation and product.
    claim_states = set(ReleaseClaim.objects.values_list("state", flat=True))
    assert {ClaimState.RELEASED, ClaimState.REJECTED, ClaimState.WITHDRAWN} <= claim_states
    assert claim_states & {ClaimState.CONTESTED, ClaimState.VENDOR_NOTIFIED}
    open_pairs = (
        ReleaseClaim.objects.filter(state__in=OPEN_STATES)
        .values("claimant", "product")
        .annotate(n=Count("pk"))
    )
    assert all(pair["n"] == 1 for pair in open_pairs)

    # Invoice numbers: per year, 1..last without a gap, in the order of their dates.
    by_year = defaultdict(list)
    for year, sequence, issued_on in Invoice.objects.order_by("year", "sequence").values_list(
        "year", "sequence", "issued_on"
    ):
        by_year[year].append((sequence, issued_on))
    for year, rows in by_year.items():
        assert [sequence for sequence, _ in rows] == list(range(1, len(rows) + 1))
        assert [issued for _, issued in rows] == sorted(issued for _, issued in rows), year
        assert InvoiceCounter.objects.get(year=year).last == len(rows)
    # Most invoices are paid, in full; some are credited by a credit note.
    seeded = Invoice.objects.with_amounts().filter(kind=Invoice.Kind.INVOICE)
    assert Payment.objects.count() > 30
    notes = Invoice.objects.filter(kind=Invoice.Kind.CREDIT_NOTE)
    assert notes.exists()
    assert all(note.total == -note.corrects.total for note in notes.select_related("corrects"))
    assert not seeded.filter(due__lt=0).exists()  # nothing paid twice or over-credited

    # The pages people read answer with the seeded data.
    alice = User.objects.get(email="alice@northwind.example")
    customer = signed_in_client(alice)
    for url in [
        reverse("portal:dashboard"),
        reverse("portal:product", args=["ledger-pro"]),
        reverse("portal:invoices"),
        reverse("portal:claims"),
        reverse("portal:notifications"),
    ]:
        assert customer.get(url).status_code == 200, url
    notary = signed_in_client(User.objects.get(email="notary@notaris.example"))
    for url in [reverse("notary:dashboard"), reverse("notary:notifications")]:
        assert notary.get(url).status_code == 200, url
    # A seeded deposit with completeness warnings, and seeded claims, open on their pages.
    warned = seeded_deposits().exclude(manifest__completeness__warnings=[])
    warned = warned.exclude(state="rejected").first()
    assert warned is not None
    assert notary.get(reverse("notary:deposit", args=[warned.pk])).status_code == 200
    opened = 0
    for state in ("released", "rejected", "withdrawn", "contested"):
        claim = ReleaseClaim.objects.filter(state=state, claimant=alice.organisation).last()
        if claim is None:
            continue
        opened += 1
        assert notary.get(reverse("notary:claim", args=[claim.pk])).status_code == 200, state
        assert customer.get(reverse("portal:claim", args=[claim.pk])).status_code == 200, state
    assert opened >= 2
    staff = signed_in_client(User.objects.get(email="staff@acme.example"))
    for url in [
        reverse("admin:records_auditentry_changelist"),
        reverse("admin:escrow_deposit_changelist"),
        reverse("admin:escrow_releaseclaim_changelist"),
        reverse("admin:billing_invoice_changelist"),
    ]:
        assert staff.get(url).status_code == 200, url

    # A second run adds nothing, and says so.
    again = run_demo(tmp_path, "--scale", "0.01")
    assert "The scaled demo data is there already (100 seeded deposits)" in again
    assert seeded_deposits().count() == 100
    assert audit_chain_verify(anchors=()).intact


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "The scale factor must be a positive number, not 0.0"),
        (["--scale", "-2"], "The scale factor must be a positive number"),
        (["--scale", "--deposits", "-5"], "--deposits must be 0 or more, not -5"),
        (["--claims", "10"], "--deposits, --claims and the other counts need --scale"),
    ],
)
def test_bad_counts_are_refused_before_anything_is_written(tmp_path, args, message) -> None:
    with pytest.raises(CommandError, match=message):
        run_demo(tmp_path, *args)
    assert not User.objects.exists()


@pytest.mark.django_db
def test_scale_refuses_to_run_outside_a_development_set_up(settings, tmp_path) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        run_demo(tmp_path, "--scale")
    assert not Deposit.objects.exists()


@pytest.mark.django_db
def test_scale_needs_the_demo_cast() -> None:
    with pytest.raises(ScaleRefused, match=r"Run `manage\.py demo` first"):
        demo_scale(counts=ScaleCounts(deposits=1))
    assert not Deposit.objects.exists()


def test_counts_follow_the_factor() -> None:
    assert ScaleCounts().times(0.001) == ScaleCounts(
        deposits=10, claims=1, invoices=5, audit_entries=50, notifications=3
    )
    assert ScaleCounts().times(2).but(claims=7, invoices=None).claims == 7
    assert ScaleCounts().times(2).invoices == 10_000
