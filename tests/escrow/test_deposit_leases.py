"""Every in-flight deposit is worked on under a lease: taken by compare-and-set, so of two
processes only one wins; renewed only by its owner until another process takes it;
handed to a queued task that any worker may take; and given up by every final
transition."""

from __future__ import annotations

import re
from datetime import timedelta

import time_machine
from django.utils import timezone

from escrow.models import Deposit
from escrow.services.deposits import (
    deposit_fail,
    deposit_lease_hand_on,
    deposit_lease_renew,
    deposit_lease_take,
    deposit_register,
    deposit_reject,
    lease_owner_new,
    lease_token,
)
from tests.factories import make_deposit

A, B = "web-1:101:aaaa1111", "worker-2:202:bbbb2222"


def test_a_lease_owner_names_host_process_and_a_random_token() -> None:
    owner = lease_owner_new()
    assert re.fullmatch(r".+:\d+:[0-9a-f]{16}", owner)
    assert lease_token(owner) == owner.rsplit(":", 1)[1]
    assert lease_owner_new() != owner


def test_a_deposit_is_born_under_its_receivers_lease(product, settings) -> None:
    settings.ESCROW_DEPOSIT_LEASE_SECONDS = 120
    before = timezone.now()
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256="c" * 64, lease_owner=A
    )
    deposit.refresh_from_db()
    assert deposit.lease_owner == A
    assert deposit.lease_expires_at is not None
    assert (
        before + timedelta(seconds=120)
        <= deposit.lease_expires_at
        <= timezone.now() + timedelta(seconds=120)
    )


def test_a_live_lease_blocks_another_process(product) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256="c" * 64, lease_owner=A
    )
    other = Deposit.objects.get(pk=deposit.pk)  # the other process's copy
    assert not deposit_lease_take(deposit=other, owner=B)
    assert not deposit_lease_renew(deposit=other, owner=B)
    assert Deposit.objects.get(pk=deposit.pk).lease_owner == A
    assert deposit_lease_take(deposit=deposit, owner=A)  # its owner may take it again


def test_an_expired_lease_is_taken_by_one_process_only(product, settings) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256="c" * 64, lease_owner=A
    )
    first, second = Deposit.objects.get(pk=deposit.pk), Deposit.objects.get(pk=deposit.pk)
    later = timezone.now() + timedelta(seconds=settings.ESCROW_DEPOSIT_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        assert deposit_lease_take(deposit=first, owner=B)
        assert not deposit_lease_take(deposit=second, owner="worker-3:303:cccc3333")
        # The process that lost its lease cannot renew it back.
        assert not deposit_lease_renew(deposit=deposit, owner=A)
    assert Deposit.objects.get(pk=deposit.pk).lease_owner == B


def test_a_lease_is_renewed_only_by_its_owner_until_another_takes_it(product, settings) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256="c" * 64, lease_owner=A
    )
    soon = timezone.now() + timedelta(seconds=settings.ESCROW_DEPOSIT_LEASE_SECONDS - 1)
    with time_machine.travel(soon):
        assert deposit_lease_renew(deposit=deposit, owner=A)
        renewed = Deposit.objects.get(pk=deposit.pk).lease_expires_at
        assert renewed is not None and renewed > soon + timedelta(seconds=1)
    past = renewed + timedelta(seconds=1)
    with time_machine.travel(past):
        # Run out, but nobody took it: still A's (a slow read-back must not lose it).
        assert deposit_lease_renew(deposit=deposit, owner=A)
    later = past + timedelta(seconds=settings.ESCROW_DEPOSIT_LEASE_SECONDS + 1)
    with time_machine.travel(later):
        assert not deposit_lease_renew(deposit=deposit, owner=B)  # never B's to renew
        assert deposit_lease_take(deposit=Deposit.objects.get(pk=deposit.pk), owner=B)
        assert not deposit_lease_renew(deposit=deposit, owner=A)  # taken: A must stop


def test_a_lease_is_tied_to_the_state_it_was_taken_in(product) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256="c" * 64, lease_owner=A
    )
    stale = Deposit.objects.get(pk=deposit.pk)
    deposit_fail(deposit=deposit, problem="intake: gone")
    assert not deposit_lease_take(deposit=stale, owner=A)  # it moved on meanwhile
    assert not deposit_lease_take(deposit=deposit, owner=A)  # failed: no lease to take


def test_a_lease_handed_to_a_queued_task_is_taken_by_any_worker(product) -> None:
    deposit = deposit_register(
        product=product, version="1.0.0", archive_sha256="c" * 64, lease_owner=A
    )
    deposit_lease_hand_on(deposit=deposit, task_name="escrow.deposit_store_sealed", seconds=90)
    deposit.refresh_from_db()
    assert deposit.lease_owner == "queued:escrow.deposit_store_sealed"
    assert deposit.lease_expires_at is not None
    assert deposit.lease_expires_at > timezone.now() + timedelta(seconds=80)
    assert deposit_lease_take(deposit=deposit, owner=B)
    assert not deposit_lease_take(deposit=Deposit.objects.get(pk=deposit.pk), owner=A)


def test_final_transitions_give_the_lease_up(product) -> None:
    failed = make_deposit(product=product, version="1.0.0")
    rejected = make_deposit(product=product, version="1.0.1")
    assert failed.lease_owner and rejected.lease_owner
    deposit_fail(deposit=failed, problem="intake: gone")
    deposit_reject(deposit=rejected, problem="not_an_archive: no")
    for deposit in (failed, rejected):
        deposit.refresh_from_db()
        assert (deposit.lease_owner, deposit.lease_expires_at) == ("", None)
