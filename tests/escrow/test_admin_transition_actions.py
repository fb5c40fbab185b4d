from __future__ import annotations

from escrow.models import Deposit
from escrow.services.deposits import deposit_fail, deposit_seal, deposit_verify
from records.models import AuditEntry
from records.services.audit import audit_record
from tests.conftest import signed_in_client
from tests.factories import make_deposit


def retry_through_admin(staff, *deposits: Deposit):
    return signed_in_client(staff).post(
        "/admin/escrow/deposit/",
        {"action": "deposit_retry", "_selected_action": [d.pk for d in deposits]},
        follow=True,
    )


def test_retrying_a_deposit_that_has_not_failed_is_refused_by_name(product, staff) -> None:
    deposit = make_deposit(product=product)
    audit_before = AuditEntry.objects.count()
    response = retry_through_admin(staff, deposit)
    shown = [str(message) for message in response.context["messages"]]
    assert any(
        "it is 'received'" in text and "only possible from: failed" in text for text in shown
    )
    deposit.refresh_from_db()
    assert deposit.state == "received"
    assert AuditEntry.objects.count() == audit_before


def test_retrying_a_failed_deposit_resumes_it_and_others_still_go_through(product, staff) -> None:
    failed = make_deposit(product=product, version="1.0.0")
    deposit_verify(deposit=failed, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=failed, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    deposit_fail(deposit=failed, problem="primary unreachable")
    untouched = make_deposit(product=product, version="1.0.1")
    response = retry_through_admin(staff, failed, untouched)
    shown = " ".join(str(message) for message in response.context["messages"])
    assert "Retry failed deposits: 1 done." in shown
    failed.refresh_from_db()
    untouched.refresh_from_db()
    assert (failed.state, untouched.state) == ("sealed", "received")
    entry = AuditEntry.objects.order_by("-sequence").first()
    assert entry is not None
    assert (entry.action, entry.actor, entry.from_state) == ("deposit.retry", staff, "failed")


def test_the_audit_log_in_the_admin_lists_the_newest_entry_first(staff) -> None:
    for action in ("test.first", "test.second", "test.third"):
        audit_record(action=action, actor_label="test")
    page = signed_in_client(staff).get("/admin/records/auditentry/", follow=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("test.third") < html.index("test.second") < html.index("test.first")
