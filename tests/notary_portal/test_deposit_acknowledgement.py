from __future__ import annotations

import pytest

from escrow.models import DepositAcknowledgement
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.transparency.witnessing import cosign_form
from vault.keys import system_signing_key
from vault.manifest import load_public_key, public_key_text, verify_manifest


@pytest.fixture
def replicated(product, staff, notary_identity):
    deposit = deposit_through_pipeline(product=product, staff=staff)
    assert deposit.state == "replicated"
    return deposit


def test_the_dashboard_lists_deposits_awaiting_acknowledgement(replicated, notary) -> None:
    page = signed_in_client(notary).get("/notary/").content.decode()
    assert "Awaiting your acknowledgement" in page
    assert f'href="/notary/deposits/{replicated.pk}/"' in page


def test_the_notary_acknowledges_and_a_signed_receipt_is_kept(replicated, notary) -> None:
    client = signed_in_client(notary)
    detail = client.get(f"/notary/deposits/{replicated.pk}/").content.decode()
    assert replicated.manifest_sha256 in detail
    response = client.post(
        f"/notary/deposits/{replicated.pk}/acknowledge/", cosign_form(notary), follow=True
    )
    assert "You acknowledged" in response.content.decode()
    replicated.refresh_from_db()
    assert replicated.state == "acknowledged"
    acknowledgement = DepositAcknowledgement.objects.get(deposit=replicated)
    assert acknowledgement.notary == notary
    assert acknowledgement.manifest_sha256 == replicated.manifest_sha256
    assert acknowledgement.receipt["manifest_sha256"] == replicated.manifest_sha256
    public = load_public_key(public_key_text(system_signing_key()))
    verify_manifest(acknowledgement.receipt, acknowledgement.signature, public)
    entry = AuditEntry.objects.get(action="deposit.acknowledge")
    assert (entry.actor, entry.from_state, entry.to_state) == (notary, "replicated", "acknowledged")


def test_a_second_acknowledgement_is_refused_and_changes_nothing(replicated, notary) -> None:
    client = signed_in_client(notary)
    client.post(f"/notary/deposits/{replicated.pk}/acknowledge/", cosign_form(notary))
    audit_count = AuditEntry.objects.count()
    response = client.post(
        f"/notary/deposits/{replicated.pk}/acknowledge/", cosign_form(notary), follow=True
    )
    assert "it is &#x27;acknowledged&#x27;" in response.content.decode()
    assert DepositAcknowledgement.objects.count() == 1
    assert AuditEntry.objects.count() == audit_count


def test_acknowledging_needs_the_second_factor(replicated, notary) -> None:
    client = signed_in_client(notary, second_factor=False)
    response = client.post(f"/notary/deposits/{replicated.pk}/acknowledge/")
    assert response["Location"] == "/notary/verify/"
    replicated.refresh_from_db()
    assert replicated.state == "replicated"
