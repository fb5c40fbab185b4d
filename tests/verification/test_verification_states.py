"""Verification's own state machine beside the deposit's: each transition through its
service, checked and audited; refused moves name the state; the selectors, the product
recipe, the admin, the per-host route and the stale-build warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app as celery_app
from escrow.models import Deposit
from escrow.selectors import covered_products_overview
from escrow.services.build_verification import (
    build_log_key,
    deposit_build_verify,
    remove_tree,
    vendor_contacts,
)
from records.models import AuditEntry
from records.services.transitions import TransitionRefused
from tests.conftest import signed_in_client
from tests.factories import make_active_subscription, make_deposit
from verification.models import BuildVerification, ProductBuildRecipe, VerificationState
from verification.routing import route_task, verification_queue_name
from verification.selectors import (
    build_histories_for,
    last_passed_at,
    verification_for,
    verifications_for,
)
from verification.services import (
    live_verification_tokens,
    product_recipe_set,
    verification_copy_path,
    verification_finish,
    verification_interrupt,
    verification_lease_renew,
    verification_no_recipe,
    verification_open,
    verification_start,
    verifications_expired,
)

OWNER = "recv-host:100:0badc0ffee"


def opened(deposit: Deposit, *, has_copy: bool = True) -> BuildVerification:
    record, queue_it = verification_open(
        deposit_id=deposit.pk, product_id=deposit.product_id, lease_owner=OWNER, has_copy=has_copy
    )
    assert queue_it is (has_copy and record.state == VerificationState.PENDING)
    return record


def actions(record: BuildVerification) -> list[tuple[str, str, str]]:
    return list(
        AuditEntry.objects.filter(
            object_type="verification.BuildVerification", object_id=str(record.pk)
        )
        .order_by("sequence")
        .values_list("action", "from_state", "to_state")
    )


def test_pending_running_then_an_outcome_each_step_audited(product: Any, settings: Any) -> None:
    record = opened(make_deposit(product=product))
    assert (record.state, record.is_final, record.badge_label) == (
        "pending",
        False,
        "Verification pending",
    )
    assert record.lease_owner == OWNER and record.lease_token == "0badc0ffee"
    assert verification_start(verification=record, owner="worker-host:7:abc", seconds=600)
    assert record.state == VerificationState.RUNNING and record.badge_label == "Verifying"
    # The process changes, the token that names the intake copy stays.
    assert record.lease_owner == "worker-host:7:0badc0ffee"
    assert record.lease_until is not None
    assert verification_lease_renew(verification=record, seconds=1200)
    finished = timezone.now()
    verification_finish(
        verification=record,
        outcome="timed_out",
        problem="stopped by the sandbox's time limit",
        exit_code=None,
        finished_at=finished,
        duration_seconds=60.5,
        log_tail="sleeping\n",
    )
    record.refresh_from_db()
    assert (record.state, record.is_final, record.passed) == ("timed_out", True, False)
    assert record.badge_label == "Build timed out"
    assert record.lease_until is None and record.finished_at == finished
    assert actions(record) == [
        ("buildverification.open", "", "pending"),
        ("buildverification.start", "pending", "running"),
        ("buildverification.finish", "running", "timed_out"),
    ]
    # A finished record's lease cannot be renewed, and nothing moves it again.
    assert not verification_lease_renew(verification=record)
    with pytest.raises(TransitionRefused, match="it is 'timed_out'; that is only possible from"):
        verification_interrupt(verification=record, problem="late")


def test_an_outcome_needs_a_running_build_and_a_known_outcome(product: Any) -> None:
    record = opened(make_deposit(product=product))
    with pytest.raises(TransitionRefused, match=r"Cannot finish .* it is 'pending'"):
        verification_finish(verification=record, outcome="passed")
    with pytest.raises(ValueError, match="'busy' is not a build outcome"):
        verification_finish(verification=record, outcome="busy")
    record.refresh_from_db()
    assert record.state == VerificationState.PENDING


def test_the_state_field_moves_only_through_transitions(product: Any) -> None:
    record = opened(make_deposit(product=product))
    with pytest.raises(AttributeError):
        record.state = VerificationState.PASSED


def test_no_recipe_and_interrupted_end_an_open_verification(product: Any) -> None:
    first = opened(make_deposit(product=product, version="1.0.0"))
    verification_no_recipe(verification=first, problem="No build recipe: add escrow.toml")
    assert (first.state, first.badge_label) == ("no_recipe", "No build recipe")
    assert first.lease_until is None
    second = opened(make_deposit(product=product, version="1.0.1"))
    verification_interrupt(verification=second, problem="not verified (interrupted): gone")
    assert (second.state, second.badge_label) == ("interrupted", "Not verified (interrupted)")
    assert actions(second)[-1] == ("buildverification.interrupt", "pending", "interrupted")


def test_only_one_worker_takes_a_verification_and_only_while_its_lease_lives(
    product: Any, settings: Any
) -> None:
    record = opened(make_deposit(product=product))
    other = BuildVerification.objects.get(pk=record.pk)
    assert verification_start(verification=record, owner="a:1:x", seconds=7200)
    assert not verification_start(verification=other, owner="b:2:y", seconds=600)
    late = opened(make_deposit(product=product, version="2.0.0"))
    assert late.lease_until is not None
    later = late.lease_until + timedelta(seconds=1)
    assert not verification_start(verification=late, owner="a:1:x", seconds=600, now=later)
    assert verifications_expired(now=later) == [late]  # the running one's lease is longer
    assert late.state == VerificationState.PENDING


def test_a_host_runs_at_most_its_slots_at_once(product: Any, settings: Any) -> None:
    settings.ESCROW_VERIFY_SLOTS = 1
    first = opened(make_deposit(product=product, version="1.0.0"))
    second = opened(make_deposit(product=product, version="1.0.1"))
    assert verification_start(verification=first, owner="host-a:1:x", seconds=600)
    assert not verification_start(verification=second, owner="host-a:2:y", seconds=600)
    # Another machine has slots of its own.
    assert verification_start(verification=second, owner="host-b:3:z", seconds=600)


def test_the_queue_is_bounded_and_a_full_one_records_busy(product: Any, settings: Any) -> None:
    settings.ESCROW_VERIFY_SLOTS = 1
    settings.ESCROW_VERIFY_QUEUE = 1
    opened(make_deposit(product=product, version="1.0.0"))
    opened(make_deposit(product=product, version="1.0.1"))
    busy = opened(make_deposit(product=product, version="1.0.2"))
    assert (busy.state, busy.badge_label) == ("busy", "Not verified (busy)")
    assert "at most 1 run and 1 wait" in busy.problem
    assert busy.lease_until is None
    # Another receiving machine's queue is its own.
    elsewhere, queue_it = verification_open(
        deposit_id=make_deposit(product=product, version="1.0.3").pk,
        product_id=product.pk,
        lease_owner="other-host:5:abc",
        has_copy=True,
    )
    assert (elsewhere.state, queue_it) == (VerificationState.PENDING, True)


def test_a_pending_record_whose_copy_is_gone_is_interrupted_by_its_build(
    product: Any, settings: Any
) -> None:
    record = opened(make_deposit(product=product))
    assert not verification_copy_path(record.deposit_id, record.lease_token).exists()
    deposit_build_verify(verification=record)
    record.refresh_from_db()
    assert record.state == VerificationState.INTERRUPTED
    assert "intake copy of the source was gone" in record.problem


def test_a_record_another_worker_took_is_left_alone(product: Any) -> None:
    record = opened(make_deposit(product=product))
    verification_interrupt(verification=record, problem="not verified (interrupted): x")
    stale = BuildVerification.objects.get(pk=record.pk)
    assert deposit_build_verify(verification=stale).state == VerificationState.INTERRUPTED
    assert len(actions(record)) == 2


def test_the_leases_say_which_copies_are_live(product: Any) -> None:
    live = opened(make_deposit(product=product, version="1.0.0"))
    ended = opened(make_deposit(product=product, version="1.0.1"))
    verification_no_recipe(verification=ended, problem="none")
    assert live_verification_tokens(
        {live.deposit_id, ended.deposit_id, 999}, now=timezone.now()
    ) == {live.deposit_id: "0badc0ffee"}
    assert verifications_expired(now=timezone.now()) == []


def test_selectors_read_one_or_many_in_one_query_and_the_last_pass(product: Any) -> None:
    deposits = [make_deposit(product=product, version=f"1.0.{n}") for n in range(3)]
    records = [opened(deposit) for deposit in deposits]
    assert verification_for(deposits[0].pk) == records[0]
    assert verification_for(424242) is None
    with CaptureQueriesContext(connection) as queries:
        found = verifications_for(deposit.pk for deposit in deposits)
    assert len(queries.captured_queries) == 1
    assert found == {record.deposit_id: record for record in records}
    assert verifications_for([]) == {}

    assert last_passed_at(product.pk) is None
    old, new = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    for record, when in ((records[0], old), (records[1], new)):
        verification_start(verification=record, owner="h:1:t", seconds=600)
        verification_finish(verification=record, outcome="passed", exit_code=0, finished_at=when)
    verification_start(verification=records[2], owner="h:1:t", seconds=600)
    verification_finish(verification=records[2], outcome="failed", exit_code=1)
    assert last_passed_at(product.pk) == new
    history = build_histories_for([product.pk])[product.pk]
    assert history.last_passed_at == new
    assert not history.stale(now=new + timedelta(days=89))
    assert history.stale(now=new + timedelta(days=91))


def test_the_dashboard_warns_of_a_product_without_a_passing_build(
    product: Any, licence: Any, subscriber: Any, staff: Any, settings: Any
) -> None:
    settings.ESCROW_VERIFY_ENABLED = True
    settings.ESCROW_VERIFY_STALE_DAYS = 30
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    record = opened(make_deposit(product=product))
    verification_start(verification=record, owner="h:1:t", seconds=600)
    verification_finish(
        verification=record,
        outcome="passed",
        exit_code=0,
        finished_at=timezone.now() - timedelta(days=31),
    )
    overview = covered_products_overview(subscriber.organisation)
    assert [(row.build_stale, row.last_build_passed_at) for row in overview] == [
        (True, record.finished_at)
    ]
    page = signed_in_client(subscriber).get("/portal/").content.decode()
    assert "No deposit of this product has passed its build verification since" in page
    assert "for longer than 30 days" in page

    settings.ESCROW_VERIFY_STALE_DAYS = 60
    assert [row.build_stale for row in covered_products_overview(subscriber.organisation)] == [
        False
    ]


def test_a_product_recipe_is_checked_before_it_is_saved(product: Any, staff: Any) -> None:
    with pytest.raises(ValidationError, match="artefacts"):
        product_recipe_set(product=product, text='[build]\ncommand = "make"\n', actor=staff)
    assert not ProductBuildRecipe.objects.exists()
    recipe = product_recipe_set(
        product=product, text='[build]\ncommand = "make"\nartefacts = ["a.out"]\n', actor=staff
    )
    assert recipe.updated_by == staff
    assert AuditEntry.objects.filter(action="productbuildrecipe.add").count() == 1


def test_staff_set_a_product_recipe_in_the_admin_and_a_bad_one_is_refused(
    product: Any, staff: Any
) -> None:
    client = signed_in_client(staff)
    bad = client.post(
        "/admin/verification/productbuildrecipe/add/",
        {"product": product.pk, "text": '[build]\ncommand = ""\nartefacts = ["a"]\n'},
    )
    assert bad.status_code == 200 and b"command" in bad.content
    assert not ProductBuildRecipe.objects.exists()
    good = client.post(
        "/admin/verification/productbuildrecipe/add/",
        {"product": product.pk, "text": '[build]\ncommand = "make"\nartefacts = ["app"]\n'},
    )
    assert good.status_code == 302
    assert ProductBuildRecipe.objects.get().updated_by == staff
    assert AuditEntry.objects.filter(action="admin.productbuildrecipe.add").exists()


def test_the_admin_shows_verifications_read_only(product: Any, staff: Any) -> None:
    record = opened(make_deposit(product=product))
    client = signed_in_client(staff)
    assert client.get("/admin/verification/buildverification/").status_code == 200
    page = client.get(f"/admin/verification/buildverification/{record.pk}/change/")
    assert page.status_code == 200 and b"0badc0ffee" in page.content
    assert client.get("/admin/verification/buildverification/add/").status_code == 403
    posted = client.post(
        f"/admin/verification/buildverification/{record.pk}/delete/", {"post": "yes"}
    )
    assert posted.status_code == 403
    assert BuildVerification.objects.filter(pk=record.pk).exists()


def test_the_build_task_goes_to_the_receiving_machines_own_queue(settings: Any) -> None:
    import socket

    settings.ESCROW_VERIFY_QUEUE_PREFIX = "verify"
    assert verification_queue_name() == f"verify@{socket.gethostname()}"
    assert route_task("escrow.deposit_build_verify", (), {}, {}) == {
        "queue": f"verify@{socket.gethostname()}"
    }
    assert route_task("escrow.deposit_replicate_copies", (), {}, {}) is None
    routed = celery_app.amqp.router.route({}, "escrow.deposit_build_verify")
    assert routed["queue"].name == f"verify@{socket.gethostname()}"


def test_the_vendor_is_told_at_its_contact_address_and_logs_sit_beside_the_deposit(
    product: Any, tmp_path: Path
) -> None:
    assert vendor_contacts(product.vendor) == [product.vendor.contact_email]
    deposit = make_deposit(product=product)
    assert build_log_key(deposit) == f"deposits/{product.slug}/{deposit.pk}/build-log.age"
    folder = tmp_path / "scratch" / "src"
    folder.mkdir(parents=True)
    (folder / "file").write_text("x")
    folder.chmod(0o500)
    remove_tree(tmp_path / "scratch")
    assert not (tmp_path / "scratch").exists()


def test_only_the_system_moves_a_verification(product: Any, staff: Any) -> None:
    from records.services.transitions import apply_transition

    record = opened(make_deposit(product=product))
    with pytest.raises(PermissionDenied):
        apply_transition(record, "interrupt", actor=staff, problem="no", finished_at=timezone.now())
