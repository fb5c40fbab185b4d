"""Replication never gives up silently (issue 12, faults 2 and 3).

Deposits go through the real pipeline; the sites are local folders or buckets
on the session's moto server, a replica "down" is a closed port or a cut relay
(``FlakyEndpoint``), and staff mail is Django's locmem outbox. Each test checks
what staff, ``vault reconcile`` and ``vault health`` are told, not only the end
state.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from escrow.models import Deposit, DepositCopy
from escrow.services.deposits import deposit_fail
from escrow.services.intake import deposit_receive
from escrow.services.replication import (
    SiteRepairs,
    deposit_copy_status,
    deposit_replicate_copies,
    deposit_replication_gave_up,
    vault_reconcile,
    vault_scrub,
)
from escrow.services.tokens import token_create
from escrow.services.vault_health import vault_health
from records.models import AuditEntry
from records.queue import enqueue
from tests import archives
from tests.s3server import closed_endpoint_url, new_bucket, s3_client, s3_site_config
from vault.site_clients import all_sites
from vault.sites import SiteError, SiteUnavailable

KINDS = ("sealed", "manifest", "signature")


@pytest.fixture
def deposit_one(product, staff, notary_identity, django_capture_on_commit_callbacks):
    """Deposit an archive like a release pipeline; replication runs on commit unless told not."""
    issued = token_create(product=product, label="CI", actor=staff)

    def deposit(version: str = "1.0.0", *, replicate: bool = True) -> Deposit:
        body = archives.tar_gz({**archives.PROJECT, "project/VERSION": version.encode()})
        with django_capture_on_commit_callbacks(execute=replicate):
            received = deposit_receive(
                token=issued.token,
                version=version,
                body=io.BytesIO(body),
                claimed_sha256=archives.sha256(body),
                content_length=len(body),
                pipeline={"commit": "abc123"},
            )
        deposit = received.deposit
        deposit.refresh_from_db()
        return deposit

    return deposit


@pytest.fixture
def staff_mail(settings):
    settings.ADMINS = [("Escrow staff", "staff@escrow.example")]


@pytest.fixture
def s3_admin(s3_endpoint: str):
    return s3_client(s3_endpoint)


def use_s3_sites(settings, s3_admin, endpoints: list[str]) -> list[str]:
    """One new versioned bucket per endpoint: primary, replica1, replica2..."""
    buckets = [new_bucket(s3_admin) for _ in endpoints]
    names = ["primary"] + [f"replica{number}" for number in range(1, len(endpoints))]
    settings.ESCROW_SITES = [
        s3_site_config(name, bucket, endpoint)
        for name, bucket, endpoint in zip(names, buckets, endpoints, strict=True)
    ]
    for site in all_sites():
        site.ensure_ready()
    return buckets


def versions(s3_admin, bucket: str, key: str) -> list[dict]:
    listing = s3_admin.list_object_versions(Bucket=bucket, Prefix=key)
    return [version for version in listing.get("Versions", []) if version["Key"] == key]


def site_root(settings, name: str) -> Path:
    return next(Path(site["path"]) for site in settings.ESCROW_SITES if site["name"] == name)


def state_of(deposit: Deposit) -> str:
    deposit.refresh_from_db()
    return str(deposit.state)


def health_exit(capsys) -> tuple[int, str, str]:
    """Run ``vault health`` as the shell would see it: (exit status, stdout, stderr)."""
    try:
        call_command("vault", "health")
        status = 0
    except CommandError as error:
        status = error.returncode
    out, err = capsys.readouterr()
    return status, out, err


# -- per-site copy status -------------------------------------------------------------------------


def test_copy_status_names_every_site_and_counts_only_complete_copies(deposit_one) -> None:
    deposit = deposit_one(replicate=False)
    assert deposit.state == "stored"
    # Stored: the sealed file is fsynced in the primary with the hash computed as it was
    # written; replication reads it back before anything is called verified.
    assert deposit_copy_status(deposit=deposit) == {"primary": "written", "replica": "missing"}

    deposit_replicate_copies(deposit=deposit)

    assert deposit_copy_status(deposit=deposit) == {"primary": "verified", "replica": "verified"}
    assert state_of(deposit) == "replicated"
    # Two of three parts is not a copy.
    DepositCopy.objects.filter(deposit=deposit, site="replica", kind="signature").delete()
    assert deposit_copy_status(deposit=deposit)["replica"] == "missing"
    # A site that is not configured is named when asked about, and holds nothing.
    assert deposit_copy_status(deposit=deposit, sites=["elsewhere"]) == {"elsewhere": "missing"}


# -- replicas are independent -----------------------------------------------------------------


def test_a_failing_first_replica_never_keeps_the_second_from_its_copy(
    deposit_one, settings, s3_admin, s3_endpoint: str, flaky_s3_endpoint
) -> None:
    _, replica1, replica2 = use_s3_sites(
        settings, s3_admin, [s3_endpoint, flaky_s3_endpoint.endpoint_url, s3_endpoint]
    )
    deposit = deposit_one(replicate=False)
    flaky_s3_endpoint.stop()

    with pytest.raises(SiteError) as failed:
        deposit_replicate_copies(deposit=deposit)

    assert failed.value.site == "replica1"
    assert failed.value.transient  # so the task retries it
    for kind in KINDS:
        assert len(versions(s3_admin, replica2, deposit.object_key(kind))) == 1
        assert versions(s3_admin, replica1, deposit.object_key(kind)) == []
    assert deposit_copy_status(deposit=deposit) == {
        "primary": "verified",
        "replica1": "missing",
        "replica2": "verified",
    }
    assert state_of(deposit) == "stored"

    # The retry does only what is missing: replica2 is not written again.
    flaky_s3_endpoint.start()
    deposit_replicate_copies(deposit=deposit)

    assert state_of(deposit) == "replicated"
    for kind in KINDS:
        assert len(versions(s3_admin, replica1, deposit.object_key(kind))) == 1
        assert len(versions(s3_admin, replica2, deposit.object_key(kind))) == 1


def test_two_failing_replicas_are_both_named_and_the_error_is_transient(
    deposit_one, settings, s3_admin, s3_endpoint: str
) -> None:
    primary = new_bucket(s3_admin)
    settings.ESCROW_SITES = [
        s3_site_config("primary", primary, s3_endpoint),
        # A bucket that does not exist: a permanent error, which no retry cures...
        s3_site_config("replica1", f"missing-{primary}", s3_endpoint),
        # ...and a site that is down, which one may.
        s3_site_config("replica2", "anything", closed_endpoint_url()),
    ]
    deposit = deposit_one(replicate=False)

    with pytest.raises(SiteError) as failed:
        deposit_replicate_copies(deposit=deposit)

    assert failed.value.site == "replica1, replica2"
    assert "replica1" in str(failed.value) and "replica2" in str(failed.value)
    assert failed.value.transient
    assert isinstance(failed.value, SiteUnavailable)  # what the task's autoretry_for names
    assert state_of(deposit) == "stored"


# -- the task gives up: staff are told, the deposit stays visible -------------------------------


def test_a_replica_down_past_the_retry_budget_mails_staff_and_reconcile_finishes_later(
    deposit_one,
    settings,
    s3_admin,
    s3_endpoint: str,
    flaky_s3_endpoint,
    staff_mail,
    mailoutbox,
    capsys,
) -> None:
    _, _, replica2 = use_s3_sites(
        settings, s3_admin, [s3_endpoint, s3_endpoint, flaky_s3_endpoint.endpoint_url]
    )
    deposit = deposit_one(replicate=False)
    flaky_s3_endpoint.stop()

    # The real task path: in-process, a task's last failure goes to its give_up hook at
    # once, exactly as a worker's does once the retry budget is spent.
    enqueue("escrow.deposit_replicate_copies", deposit_id=deposit.pk)

    assert state_of(deposit) == "stored"  # safe in the primary; never dropped from view
    [told] = [mail for mail in mailoutbox if "gave up" in mail.subject]
    assert told.to == ["staff@escrow.example"]
    assert f"deposit #{deposit.pk}" in told.subject
    assert "replica2" in told.body and "replica1" not in told.body.split("Reason:")[0]
    assert "SiteUnavailable" in told.body
    assert AuditEntry.objects.filter(
        action="deposit.replication_gave_up", details__missing_sites=["replica2"]
    ).exists()
    # Queued again during the same outage (the sweeper does that): no second mail.
    enqueue("escrow.deposit_replicate_copies", deposit_id=deposit.pk)
    assert len([mail for mail in mailoutbox if "gave up" in mail.subject]) == 1
    assert AuditEntry.objects.filter(action="deposit.replication_gave_up").count() == 1
    assert state_of(deposit) == "stored"

    # Within the grace period the deposit is pending, and vault health still passes.
    status, out, _ = health_exit(capsys)
    assert status == 0
    assert f"pending: deposit #{deposit.pk}" in out
    # Past it, vault health fails and names the site.
    later = timezone.now() + timedelta(seconds=settings.ESCROW_COPY_GRACE_SECONDS + 60)
    with time_machine.travel(later, tick=False):
        status, _, err = health_exit(capsys)
    assert status == 1
    assert f"problem: deposit #{deposit.pk}" in err
    assert "missing in replica2" in err

    # Reconcile tells the truth while the site is still down...
    repairs = vault_reconcile()
    assert repairs.copied == [] and repairs.promoted == []
    assert len(repairs.problems) == len(KINDS)
    assert all(problem.startswith("replica2:") for problem in repairs.problems)

    # ...and once it is back, copies what is missing and promotes the deposit.
    flaky_s3_endpoint.start()
    repairs = vault_reconcile()

    assert sorted(repairs.copied) == sorted(
        f"replica2:{deposit.object_key(kind)}" for kind in KINDS
    )
    assert repairs.promoted == [f"deposit #{deposit.pk} ({deposit})"]
    assert repairs.problems == []
    assert state_of(deposit) == "replicated"
    for kind in KINDS:
        assert len(versions(s3_admin, replica2, deposit.object_key(kind))) == 1
    with time_machine.travel(later, tick=False):
        status, out, err = health_exit(capsys)
    assert status == 0, err
    assert "every one verified in every site" in out


def test_giving_up_on_a_complete_deposit_tells_nobody(deposit_one, staff_mail, mailoutbox) -> None:
    deposit = deposit_one()
    assert deposit.state == "replicated"
    assert deposit_replication_gave_up(deposit=deposit, reason="late retry") == []
    assert mailoutbox == []


# -- reconcile covers every deposit, records what it finds, promotes each on its own ---------


def test_reconcile_records_a_present_but_unrecorded_copy_and_promotes(
    deposit_one, settings
) -> None:
    # A replication that copied the files but died before it recorded them.
    deposit = deposit_one(replicate=False)
    primary, replica = site_root(settings, "primary"), site_root(settings, "replica")
    for kind in KINDS:
        target = replica / deposit.object_key(kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(primary / deposit.object_key(kind), target)

    repairs = vault_reconcile()

    assert repairs.copied == []
    assert sorted(repairs.recorded) == sorted(
        f"replica:{deposit.object_key(kind)}" for kind in KINDS
    )
    assert repairs.promoted == [f"deposit #{deposit.pk} ({deposit})"]
    assert repairs.problems == []
    assert state_of(deposit) == "replicated"
    for kind in KINDS:
        copy = DepositCopy.objects.get(deposit=deposit, site="replica", kind=kind)
        data = (replica / deposit.object_key(kind)).read_bytes()
        assert copy.sha256 == hashlib.sha256(data).hexdigest()
    # Recorded is recorded: the next run has nothing to do.
    assert vault_reconcile().recorded == []


def test_reconcile_never_records_a_present_but_damaged_copy(deposit_one, settings) -> None:
    deposit = deposit_one(replicate=False)
    primary, replica = site_root(settings, "primary"), site_root(settings, "replica")
    for kind in KINDS:
        target = replica / deposit.object_key(kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(primary / deposit.object_key(kind), target)
    sealed = replica / deposit.object_key("sealed")
    sealed.write_bytes(b"not the sealed archive")

    repairs = vault_reconcile()

    assert repairs.problems == [
        f"replica:{deposit.object_key('sealed')}: damaged (vault scrub heals it)"
    ]
    assert repairs.promoted == []
    assert not DepositCopy.objects.filter(deposit=deposit, site="replica", kind="sealed").exists()
    assert state_of(deposit) == "stored"
    # Scrub heals it (keeping the damaged bytes aside), records it and promotes the deposit.
    scrubbed = vault_scrub()
    assert scrubbed.healed == [f"replica:{deposit.object_key('sealed')}"]
    assert scrubbed.promoted == [f"deposit #{deposit.pk} ({deposit})"]
    assert state_of(deposit) == "replicated"


def test_one_unhealable_deposit_never_blocks_another_deposits_promotion(
    deposit_one, settings
) -> None:
    broken, fine = deposit_one("1.0.0", replicate=False), deposit_one("1.1.0", replicate=False)
    # The broken one's only copy rots before it reaches the replica: nothing can heal it.
    rotten = site_root(settings, "primary") / broken.object_key("sealed")
    rotten.chmod(0o644)
    rotten.write_bytes(b"rotten")

    repairs = vault_reconcile()

    key = broken.object_key("sealed")
    sealed = DepositCopy.objects.get(deposit=broken, site="primary", kind="sealed")
    assert repairs.problems == [
        # Written in one pass and never read back: reconcile reads it back, and says so.
        f"primary:{key}: {key} in primary reads back with SHA-256 "
        f"{hashlib.sha256(b'rotten').hexdigest()}, not {sealed.sha256} as written: "
        "the copy is damaged",
        f"{key}: no good copy anywhere",
    ]
    assert repairs.promoted == [f"deposit #{fine.pk} ({fine})"]
    assert state_of(fine) == "replicated"
    assert state_of(broken) == "stored"


def test_reconcile_covers_a_failed_deposit_and_brings_it_back_to_replicated(
    deposit_one, staff_mail, mailoutbox
) -> None:
    # An older release failed deposits whose replication gave up; they held a single copy
    # while reconcile reported nothing.
    deposit = deposit_one(replicate=False)
    deposit_fail(deposit=deposit, problem="replicate: storage site 'replica': unreachable")
    assert state_of(deposit) == "failed"
    # vault health sees it too: one verified copy of two, still within the grace period.
    [pending] = vault_health().pending
    assert pending.startswith(
        f"deposit #{deposit.pk} ({deposit}, failed): verified copies in 0 of 2 sites, "
        "written but not yet read back in primary"
    )

    repairs = vault_reconcile()

    assert sorted(repairs.copied) == sorted(f"replica:{deposit.object_key(kind)}" for kind in KINDS)
    assert repairs.promoted == [f"deposit #{deposit.pk} ({deposit})"]
    assert state_of(deposit) == "replicated"
    assert deposit_copy_status(deposit=deposit) == {"primary": "verified", "replica": "verified"}


def test_one_site_down_never_keeps_reconcile_from_another_and_costs_one_failure(
    deposit_one, settings, s3_admin, s3_endpoint: str, flaky_s3_endpoint
) -> None:
    _, _, replica2 = use_s3_sites(
        settings, s3_admin, [s3_endpoint, flaky_s3_endpoint.endpoint_url, s3_endpoint]
    )
    first, second = deposit_one("1.0.0", replicate=False), deposit_one("1.1.0", replicate=False)
    flaky_s3_endpoint.stop()

    repairs = vault_reconcile()

    assert sorted(repairs.copied) == sorted(
        f"replica2:{deposit.object_key(kind)}" for deposit in (first, second) for kind in KINDS
    )
    assert repairs.promoted == []
    # Every object replica1 should hold is reported; the site was asked only once.
    assert len(repairs.problems) == 2 * len(KINDS)
    assert all(problem.startswith("replica1:") for problem in repairs.problems)
    assert sum("not checked, the site is unavailable" in p for p in repairs.problems) == 5
    assert state_of(first) == state_of(second) == "stored"

    flaky_s3_endpoint.start()
    repairs = vault_reconcile()

    assert len(repairs.copied) == 2 * len(KINDS)
    assert all(line.startswith("replica1:") for line in repairs.copied)
    assert sorted(repairs.promoted) == sorted(
        f"deposit #{deposit.pk} ({deposit})" for deposit in (first, second)
    )
    for deposit in (first, second):
        for kind in KINDS:
            assert len(versions(s3_admin, replica2, deposit.object_key(kind))) == 1


# -- scrub checks the recorded version ---------------------------------------------------------


def test_scrub_notices_a_replaced_version_and_records_the_one_in_place(
    deposit_one, settings, s3_admin, s3_endpoint: str
) -> None:
    _, replica1 = use_s3_sites(settings, s3_admin, [s3_endpoint, s3_endpoint])
    deposit = deposit_one()
    assert deposit.state == "replicated"
    key = deposit.object_key("manifest")
    recorded = DepositCopy.objects.get(deposit=deposit, site="replica1", kind="manifest")
    [original] = versions(s3_admin, replica1, key)
    assert recorded.version_id == original["VersionId"]
    # Someone writes the same bytes again: a new version the vault never made.
    same = s3_admin.get_object(Bucket=replica1, Key=key)["Body"].read()
    rewritten = s3_admin.put_object(
        Bucket=replica1, Key=key, Body=same, Metadata={"sha256": recorded.sha256}
    )

    repairs = vault_scrub()

    assert repairs.problems == []
    assert repairs.healed == [
        f"replica1:{key}: the recorded version {original['VersionId']} was replaced by version "
        f"{rewritten['VersionId']}, whose bytes are good; recorded that version"
    ]
    recorded.refresh_from_db()
    assert recorded.version_id == rewritten["VersionId"]
    assert len(versions(s3_admin, replica1, key)) == 2  # nothing erased, nothing added
    assert vault_scrub().healed == []


def test_the_reconcile_command_says_what_it_recorded_and_promoted(
    deposit_one, settings, capsys
) -> None:
    deposit = deposit_one(replicate=False)
    primary, replica = site_root(settings, "primary"), site_root(settings, "replica")
    target = replica / deposit.object_key("sealed")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(primary / deposit.object_key("sealed"), target)

    call_command("vault", "reconcile")

    out, err = capsys.readouterr()
    assert f"recorded: replica:{deposit.object_key('sealed')}" in out
    assert f"copied: replica:{deposit.object_key('manifest')}" in out
    assert f"promoted to replicated: deposit #{deposit.pk} ({deposit})" in out
    assert "2 copied, no problems" in out
    assert err == ""
    assert state_of(deposit) == "replicated"


def test_scrub_notices_that_the_recorded_version_is_gone(
    deposit_one, settings, s3_admin, s3_endpoint: str, vault_delete_guard
) -> None:
    _, replica1 = use_s3_sites(settings, s3_admin, [s3_endpoint, s3_endpoint])
    deposit = deposit_one()
    key = deposit.object_key("signature")
    recorded = DepositCopy.objects.get(deposit=deposit, site="replica1", kind="signature")
    [original] = versions(s3_admin, replica1, key)
    # The provider (or someone with its console) erases the recorded version after writing
    # another: the vault never deletes, so the test lets this one bucket be erased from.
    other = s3_admin.put_object(Bucket=replica1, Key=key, Body=b"someone else's bytes")
    vault_delete_guard.allow_bucket(replica1)
    s3_admin.delete_object(Bucket=replica1, Key=key, VersionId=original["VersionId"])
    assert [version["VersionId"] for version in versions(s3_admin, replica1, key)] == [
        other["VersionId"]
    ]

    repairs = vault_scrub()

    [healed_version] = [
        version["VersionId"] for version in versions(s3_admin, replica1, key) if version["IsLatest"]
    ]
    assert repairs.problems == []
    assert repairs.healed == [
        f"replica1:{key}: the recorded version {original['VersionId']} was replaced by damaged "
        f"version {other['VersionId']}; healed as version {healed_version}"
    ]
    recorded.refresh_from_db()
    assert recorded.version_id == healed_version
    healed = s3_admin.get_object(Bucket=replica1, Key=key)["Body"].read()
    assert hashlib.sha256(healed).hexdigest() == recorded.sha256
    assert vault_scrub() == SiteRepairs()
