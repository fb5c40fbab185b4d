"""Claim and deposit histories read as sentences, never as action codes: every action
the code can record on a claim or a deposit has a sentence, and the portals, the
vendor's page and the notary's deposit page show them."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from escrow.history import SENTENCES, Audience, HistoryLine, deposit_history, history_lines
from escrow.links import vendor_claim_link
from escrow.models import Deposit, ReleaseClaim
from escrow.selectors import claim_history
from escrow.services.claims import claim_notify_vendor, claim_request_evidence
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import make_acknowledged_deposit, make_active_subscription, make_claim
from tests.state_machines import declared_table

SOURCE = Path(settings.BASE_DIR)
APPS = ["accounts", "billing", "escrow", "notary_portal", "portal", "records", "vault"]
AT = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)
# What a raw action code looks like on a page: "releaseclaim.notify_vendor", "evidence.view".
CODE = re.compile(r"\b(?:releaseclaim|deposit|evidence|release|admin)\.[a-z_]+\b")


def source_files() -> list[Path]:
    return [path for app in APPS for path in (SOURCE / app).rglob("*.py")]


def audit_calls() -> list[str]:
    """The text of every ``audit_record(...)`` call in the application's source."""
    calls = []
    for path in source_files():
        text = path.read_text()
        for match in re.finditer(r"\baudit_record\(\n?", text):
            if text[: match.start()].rstrip().endswith("def"):
                continue
            depth, end = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            calls.append(text[match.start() : end])
    return calls


def constants() -> dict[str, str]:
    found = {}
    for path in source_files():
        for name, value in re.findall(r'^(_?[A-Z_]+) = "([a-z_.]+)"$', path.read_text(), re.M):
            found[name] = value
    return found


def test_the_scan_finds_the_audit_calls_it_should() -> None:
    # Guards the scan itself: were it to find nothing, the next test would prove nothing.
    actions = " ".join(audit_calls())
    assert 'action="releaseclaim.file"' in actions
    assert 'action="evidence.view"' in actions
    assert "action=_GAVE_UP" in actions


def test_every_action_recorded_on_a_claim_or_a_deposit_has_a_sentence() -> None:
    names = constants()
    recorded = set()
    for call in audit_calls():
        target = re.search(r"target=([a-z_.]+)", call)
        on_claim_or_deposit = target is not None and target.group(1).split(".")[-1] in {
            "claim",
            "deposit",
        }
        if not on_claim_or_deposit:
            continue
        literal = re.search(r'action="([a-z_.]+)"', call)
        constant = re.search(r"action=([A-Z_]+)\b", call)
        assert literal or constant, f"an action this test cannot read: {call}"
        recorded.add(literal.group(1) if literal else names[constant.group(1)])  # type: ignore[union-attr]
    for model in (ReleaseClaim, Deposit):
        for transition in declared_table(model):
            recorded.add(f"{model._meta.model_name}.{transition}")
        # Staff corrections through the admin (records.admin_helpers).
        recorded |= {
            f"admin.{model._meta.model_name}.change",
            f"admin.{model._meta.model_name}.add",
        }
    assert {"releaseclaim.notify_vendor", "deposit.replication_gave_up"} <= recorded
    missing = sorted(recorded - set(SENTENCES))
    assert missing == [], f"actions without a sentence: {missing}"


def entry(action: str, **fields: object) -> AuditEntry:
    return AuditEntry(
        sequence=1,
        created_at=fields.pop("created_at", AT),
        actor_label=str(fields.pop("actor_label", "system")),
        action=action,
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.django_db
def test_a_sentence_says_what_happened_and_when_in_utc() -> None:
    [line] = history_lines(
        [entry("releaseclaim.notify_vendor", object_type="escrow.ReleaseClaim")],
        audience=Audience.CUSTOMER,
    )
    assert line == HistoryLine(
        at=AT, text="The vendor was notified by e-mail on 2 Dec 2026 at 14:05 UTC."
    )


@pytest.mark.django_db
def test_the_vendor_reads_times_on_its_own_clock() -> None:
    [line] = history_lines(
        [entry("releaseclaim.mark_uncontested")],
        audience=Audience.VENDOR,
        time_zone="Europe/Amsterdam",
    )
    assert line.text.endswith("on 2 Dec 2026 at 15:05 CET.")


@pytest.mark.django_db
def test_every_sentence_is_words_for_every_audience(subscriber, notary, staff) -> None:
    labels = [
        "system",
        "vendor",
        "token:abc123",
        f"customer:{subscriber.email}",
        f"notary:{notary.email}",
        f"staff:{staff.email}",
    ]
    details = {
        "evidence": [{"file": "ruling.pdf", "sha256": "0" * 64}],
        "file": "ruling.pdf",
        "version": "2.4.0",
        "recipients": ["age1a", "age1b"],
        "missing_sites": ["replica-1"],
        "fields": ["contest_deadline"],
    }
    for action in SENTENCES:
        for label in labels:
            for audience in Audience:
                [line] = history_lines(
                    [entry(action, actor_label=label, details=details, from_state="sealed")],
                    audience=audience,
                    organisation_id=subscriber.organisation_id,
                )
                assert not CODE.search(line.text), line.text
                assert line.text[0].isupper() and line.text.endswith("14:05 UTC."), line.text
                assert "_" not in line.text and "None" not in line.text, line.text


@pytest.mark.django_db
def test_an_unknown_action_reads_as_words_never_as_its_code() -> None:
    [line] = history_lines(
        [
            entry(
                "releaseclaim.put_on_hold",
                object_type="escrow.ReleaseClaim",
                to_state="under_review",
            )
        ],
        audience=Audience.NOTARY,
    )
    assert "releaseclaim" not in line.text and "put_on_hold" not in line.text
    assert line.text == (
        "The escrow service recorded a step (“put on hold”); it is now under review by the "
        "notary on 2 Dec 2026 at 14:05 UTC."
    )


@pytest.mark.django_db
def test_people_are_named_for_the_reader(subscriber, notary) -> None:
    viewed = entry(
        "evidence.view", actor_label=f"notary:{notary.email}", details={"file": "ruling.pdf"}
    )
    filed = entry("releaseclaim.file", actor_label=f"customer:{subscriber.email}")

    def texts(audience: Audience) -> list[str]:
        lines = history_lines(
            [viewed, filed], audience=audience, organisation_id=subscriber.organisation_id
        )
        return [line.text for line in lines]

    assert texts(Audience.NOTARY) == [
        f'The notary {notary.full_name} opened evidence "ruling.pdf" on 2 Dec 2026 at 14:05 UTC.',
        f"{subscriber.full_name} of Northwind Logistics B.V. filed the claim "
        "on 2 Dec 2026 at 14:05 UTC.",
    ]
    assert texts(Audience.CUSTOMER) == [
        'The notary opened evidence "ruling.pdf" on 2 Dec 2026 at 14:05 UTC.',
        f"{subscriber.full_name} filed the claim on 2 Dec 2026 at 14:05 UTC.",
    ]
    vendor = texts(Audience.VENDOR)
    assert vendor[1] == "The claimant filed the claim on 2 Dec 2026 at 14:05 UTC."
    assert all(notary.email not in text and subscriber.email not in text for text in vendor)


# --- the pages ------------------------------------------------------------------------


@pytest.fixture
def reviewed_claim(licence, subscriber, staff, product, notary, notary_identity) -> ReleaseClaim:
    """A claim the vendor was told of, whose evidence the notary opened, and for which
    the notary asked for more evidence (so the history has a note)."""
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    notary_client = signed_in_client(notary)
    evidence = claim.evidence.get()
    link = notary_client.get(f"/notary/claims/{claim.pk}/evidence/{evidence.pk}/")
    assert notary_client.get(link["Location"]).status_code == 200
    # Straight to review, as after the contest period, to ask for more evidence.
    from escrow.services.claims import claim_mark_uncontested, claim_start_review

    claim_mark_uncontested(claim=claim)
    claim_start_review(claim=claim, actor=None)
    claim_request_evidence(claim=claim, notary=notary, reasons="Send the court's <ruling>.")
    claim.refresh_from_db()
    return claim


def shown(page: str) -> str:
    return " ".join(page.split())


def test_the_customer_claim_page_tells_the_history_in_sentences(reviewed_claim, subscriber) -> None:
    page = shown(
        signed_in_client(subscriber).get(f"/portal/claims/{reviewed_claim.pk}/").content.decode()
    )
    today = timezone.now()
    assert (
        f"{subscriber.full_name} filed the claim with 1 document (&quot;ruling.pdf&quot;) "
        f"on {today.day}" in page
    )
    assert "The vendor was notified by e-mail on" in page
    assert "The notary opened evidence &quot;ruling.pdf&quot; on" in page
    assert "The notary asked for more evidence on" in page
    assert "Send the court&#x27;s &lt;ruling&gt;." in page  # the reasons, escaped
    assert not CODE.search(page)
    assert "→" not in page


def test_the_notary_claim_page_names_the_notary(reviewed_claim, notary) -> None:
    page = shown(
        signed_in_client(notary).get(f"/notary/claims/{reviewed_claim.pk}/").content.decode()
    )
    assert f"The notary {notary.full_name} opened evidence &quot;ruling.pdf&quot; on" in page
    assert f"The notary {notary.full_name} asked for more evidence on" in page
    assert not CODE.search(page)


def test_the_vendor_page_shows_the_history_on_the_vendors_clock(
    product, subscriber, licence, staff, notary, notary_identity
) -> None:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    make_acknowledged_deposit(product=product, notary=notary)
    claim = make_claim(product=product, filed_by=subscriber)
    claim_notify_vendor(claim=claim)
    claim.refresh_from_db()
    page = shown(Client().get(vendor_claim_link(claim=claim)).content.decode())
    zone = product.vendor.effective_time_zone
    assert "<h2>History</h2>" in page
    assert f"Times are on your clock ({zone})" in page
    assert "The claimant filed the claim with 1 document" in page
    notified = timezone.localtime(
        AuditEntry.objects.get(action="releaseclaim.notify_vendor").created_at,
        timezone=ZoneInfo(zone),
    )
    assert (
        "The vendor was notified by e-mail on "
        f"{notified.day} {notified:%b %Y at %H:%M} {notified.tzname()}." in page
    )
    assert subscriber.email not in page
    assert not CODE.search(page)


def test_the_notary_deposit_page_has_the_deposits_history(product, notary) -> None:
    deposit = make_acknowledged_deposit(product=product, notary=notary, version="2.4.0")
    assert [e.action for e in deposit_history(deposit)] == [
        "deposit.receive",
        "deposit.verify",
        "deposit.seal",
        "deposit.store",
        "deposit.replicate",
        "deposit.acknowledge",
    ]
    page = shown(signed_in_client(notary).get(f"/notary/deposits/{deposit.pk}/").content.decode())
    assert "<h2>History</h2>" in page
    for sentence in (
        "The archive passed every check, and its manifest was written and signed on",
        "The sealed file was stored in the primary storage site and read back intact on",
        "Every other storage site confirmed a verified copy on",
        f"The notary {notary.full_name} acknowledged holding the sealed deposit in the safe on",
    ):
        assert sentence in page
    assert not CODE.search(page)


def test_the_claim_history_the_pages_use_is_the_claims_audit_entries(reviewed_claim) -> None:
    lines = history_lines(claim_history(reviewed_claim), audience=Audience.CUSTOMER)
    assert len(lines) == len(claim_history(reviewed_claim)) >= 6


@pytest.mark.django_db
def test_every_entry_the_demo_journeys_record_has_its_own_sentence(settings, tmp_path) -> None:
    # The demo walks every journey (claims contested, reviewed, released; deposits
    # through the pipeline): none of what it records falls back to the generic words.
    from django.core.management import call_command

    settings.DEBUG = True
    call_command(
        "demo", password="demo-password-1", identity_file=tmp_path / "n.txt", stdout=io.StringIO()
    )
    about = AuditEntry.objects.filter(object_type__in=["escrow.ReleaseClaim", "escrow.Deposit"])
    actions = set(about.values_list("action", flat=True))
    assert {"releaseclaim.notify_vendor", "deposit.acknowledge"} <= actions
    assert sorted(actions - set(SENTENCES)) == []
    lines = history_lines(about.order_by("sequence"), audience=Audience.CUSTOMER)
    generic = [line.text for line in lines if "recorded a step" in line.text]
    assert generic == []
    assert not [line.text for line in lines if CODE.search(line.text)]


@pytest.mark.django_db
def test_a_person_whose_email_changed_is_still_named(subscriber) -> None:
    filed = entry("releaseclaim.file", actor_label="customer:old-address@northwind.example")
    filed.actor = subscriber
    [line] = history_lines(
        [filed], audience=Audience.CUSTOMER, organisation_id=subscriber.organisation_id
    )
    assert line.text.startswith(f"{subscriber.full_name} filed the claim on ")
