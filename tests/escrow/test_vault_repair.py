"""Reconcile and scrub keep every site whole, on local folders and on S3 buckets.

Deposits go through the real pipeline (``deposit_receive``, replication run on
commit). The tests then play the disk or the provider: they remove a file from
a replica folder (a lost disk), overwrite bytes (bit rot) or put other bytes
over an S3 object. The vault code itself never removes anything; the autouse
delete guard fails any test in which it tries to on S3.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from escrow.models import Deposit, DepositCopy
from escrow.services.intake import deposit_receive
from escrow.services.replication import (
    SiteRepairs,
    deposit_replicate_copies,
    vault_reconcile,
    vault_scrub,
)
from escrow.services.tokens import token_create
from tests import archives
from tests.s3server import new_bucket, s3_client, s3_site_config
from vault.site_clients import all_sites
from vault.sites import SiteError
from vault.sites_local import QUARANTINE

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
        assert deposit.state == ("replicated" if replicate else "stored"), deposit.problem
        return deposit

    return deposit


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_sha256(deposit: Deposit, kind: str) -> str:
    return DepositCopy.objects.get(deposit=deposit, site="primary", kind=kind).sha256


# -- local folders ------------------------------------------------------------------------------


def site_root(settings, name: str) -> Path:
    return next(Path(site["path"]) for site in settings.ESCROW_SITES if site["name"] == name)


def snapshot(settings) -> dict[Path, tuple[int, bytes]]:
    """Every file in every site folder (quarantine included) with its mtime and bytes."""
    return {
        path: (path.stat().st_mtime_ns, path.read_bytes())
        for site in settings.ESCROW_SITES
        for path in sorted(Path(site["path"]).rglob("*"))
        if path.is_file()
    }


def damage(path: Path, *, at: int = 200, flip: int = 0x01) -> bytes:
    """Bit rot: change one byte in place (same size); return the damaged bytes."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= flip
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)
    return bytes(data)


def quarantined(settings, name: str) -> list[Path]:
    folder = site_root(settings, name) / QUARANTINE
    return sorted(path for path in folder.rglob("*") if path.is_file())


def test_the_embedded_vault_is_two_local_folders(settings) -> None:
    # The tests below rely on it: a primary and a replica, both folders under tmp_path.
    assert [(site["name"], site["kind"]) for site in settings.ESCROW_SITES] == [
        ("primary", "local"),
        ("replica", "local"),
    ]


@pytest.mark.parametrize("lost_from", ["replica", "primary"])
@pytest.mark.parametrize("kind", KINDS)
def test_reconcile_copies_a_lost_file_back_from_a_good_copy(
    deposit_one, settings, lost_from: str, kind: str
) -> None:
    deposit = deposit_one()
    key = deposit.object_key(kind)
    good_site = "primary" if lost_from == "replica" else "replica"
    original = (site_root(settings, good_site) / key).read_bytes()
    lost = site_root(settings, lost_from) / key
    lost.unlink()  # the lost disk; the vault never removes a file

    repairs = vault_reconcile()

    assert repairs == SiteRepairs(copied=[f"{lost_from}:{key}"])
    assert lost.read_bytes() == original
    assert sha256_of(lost.read_bytes()) == expected_sha256(deposit, kind)
    assert lost.stat().st_mode & 0o777 == 0o444
    # Run again: the vault is whole, so there is nothing left to copy.
    assert vault_reconcile() == SiteRepairs()


def test_reconcile_copies_the_lost_files_of_every_deposit(deposit_one, settings) -> None:
    first, second = deposit_one("1.0.0"), deposit_one("1.1.0")
    replica = site_root(settings, "replica")
    for kind in KINDS:
        (replica / second.object_key(kind)).unlink()
    (replica / first.object_key("sealed")).unlink()

    repairs = vault_reconcile()

    assert sorted(repairs.copied) == sorted(
        [f"replica:{first.object_key('sealed')}"]
        + [f"replica:{second.object_key(kind)}" for kind in KINDS]
    )
    assert repairs.problems == []
    for deposit in (first, second):
        for kind in KINDS:
            stored = (replica / deposit.object_key(kind)).read_bytes()
            assert sha256_of(stored) == expected_sha256(deposit, kind)


def test_reconcile_of_a_whole_vault_changes_nothing(deposit_one, settings) -> None:
    deposit_one()
    before = snapshot(settings)

    assert vault_reconcile() == SiteRepairs()

    assert snapshot(settings) == before


def test_reconcile_never_spreads_a_damaged_copy(deposit_one, settings) -> None:
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    (site_root(settings, "replica") / key).unlink()
    damage(site_root(settings, "primary") / key)
    before = snapshot(settings)

    repairs = vault_reconcile()

    assert repairs == SiteRepairs(problems=[f"{key}: no good copy anywhere"])
    assert not (site_root(settings, "replica") / key).exists()
    assert snapshot(settings) == before


@pytest.mark.parametrize("damaged_site", ["replica", "primary"])
def test_scrub_heals_a_damaged_file_and_keeps_the_damaged_copy_in_quarantine(
    deposit_one, settings, damaged_site: str
) -> None:
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    good_site = "primary" if damaged_site == "replica" else "replica"
    good = (site_root(settings, good_site) / key).read_bytes()
    damaged = damage(site_root(settings, damaged_site) / key)
    assert sha256_of(damaged) != deposit.ciphertext_sha256

    repairs = vault_scrub()

    assert repairs == SiteRepairs(healed=[f"{damaged_site}:{key}"])
    healed = site_root(settings, damaged_site) / key
    assert sha256_of(healed.read_bytes()) == deposit.ciphertext_sha256
    assert healed.read_bytes() == good
    assert healed.stat().st_mode & 0o777 == 0o444
    # The damaged bytes are kept aside, named after the key and their own digest.
    [kept] = quarantined(settings, damaged_site)
    assert kept.read_bytes() == damaged
    assert kept.name.startswith(Path(key).name)
    assert sha256_of(damaged)[:12] in kept.name
    assert quarantined(settings, good_site) == []
    assert (site_root(settings, good_site) / key).read_bytes() == good
    # Healed is healed: the next scrub finds nothing.
    assert vault_scrub() == SiteRepairs()


def test_scrub_heals_a_damaged_manifest_and_signature_too(deposit_one, settings) -> None:
    deposit = deposit_one()
    replica = site_root(settings, "replica")
    for kind in ("manifest", "signature"):
        damage(replica / deposit.object_key(kind), at=5, flip=0x20)

    repairs = vault_scrub()

    assert sorted(repairs.healed) == sorted(
        f"replica:{deposit.object_key(kind)}" for kind in ("manifest", "signature")
    )
    assert repairs.problems == []
    for kind in ("manifest", "signature"):
        stored = (replica / deposit.object_key(kind)).read_bytes()
        assert sha256_of(stored) == expected_sha256(deposit, kind)
    assert len(quarantined(settings, "replica")) == 2


def test_scrub_of_an_intact_vault_reports_nothing_and_changes_nothing(
    deposit_one, settings
) -> None:
    deposit_one("1.0.0")
    deposit_one("1.1.0")
    before = snapshot(settings)
    assert len(before) == 2 * 2 * len(KINDS)  # two deposits, two sites, three parts each

    assert vault_scrub() == SiteRepairs()

    assert snapshot(settings) == before
    assert not (site_root(settings, "primary") / QUARANTINE).exists()
    assert not (site_root(settings, "replica") / QUARANTINE).exists()


def test_scrub_with_every_copy_damaged_reports_it_and_changes_nothing(
    deposit_one, settings
) -> None:
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    damage(site_root(settings, "primary") / key, at=150)
    damage(site_root(settings, "replica") / key, at=300)
    before = snapshot(settings)

    repairs = vault_scrub()

    assert repairs == SiteRepairs(
        problems=[
            f"primary:{key}: damaged, and no good copy anywhere",
            f"replica:{key}: damaged, and no good copy anywhere",
        ]
    )
    assert snapshot(settings) == before
    assert quarantined(settings, "primary") == quarantined(settings, "replica") == []


def test_scrub_reports_a_missing_file_and_leaves_it_to_reconcile(deposit_one, settings) -> None:
    deposit = deposit_one()
    key = deposit.object_key("signature")
    (site_root(settings, "replica") / key).unlink()
    before = snapshot(settings)

    repairs = vault_scrub()

    assert repairs == SiteRepairs(problems=[f"replica:{key}: missing (vault reconcile copies it)"])
    assert snapshot(settings) == before


def test_reconcile_completes_a_replication_that_never_ran_and_skips_rejected_deposits(
    deposit_one, settings
) -> None:
    # Stored but never replicated (the task was lost): reconcile fills the replica in. A
    # rejected deposit has nothing in the vault, and neither repair goes looking for it.
    deposit = deposit_one(replicate=False)
    rejected_body = archives.traversal()
    issued = token_create(product=deposit.product, label="CI 2", actor=None)
    rejected = deposit_receive(
        token=issued.token,
        version="9.9.9",
        body=io.BytesIO(rejected_body),
        claimed_sha256=archives.sha256(rejected_body),
        content_length=len(rejected_body),
        pipeline={},
    ).deposit
    assert rejected.state == "rejected"

    repairs = vault_reconcile()

    assert sorted(repairs.copied) == sorted(f"replica:{deposit.object_key(kind)}" for kind in KINDS)
    assert repairs.problems == []
    assert repairs.promoted == [f"deposit #{deposit.pk} ({deposit})"]
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert vault_scrub() == SiteRepairs()


# -- the management commands -------------------------------------------------------------------


def test_vault_reconcile_command_copies_a_lost_file_back_and_says_so(
    deposit_one, settings, capsys
) -> None:
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    lost = site_root(settings, "replica") / key
    lost.unlink()

    call_command("vault", "reconcile")

    assert sha256_of(lost.read_bytes()) == deposit.ciphertext_sha256
    out, err = capsys.readouterr()
    assert f"copied: replica:{key}" in out
    assert "1 copied, no problems" in out
    assert "problem:" not in err


def test_vault_scrub_command_heals_a_damaged_file_and_says_so(
    deposit_one, settings, capsys
) -> None:
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    damaged = damage(site_root(settings, "replica") / key)

    call_command("vault", "scrub")

    healed = (site_root(settings, "replica") / key).read_bytes()
    assert sha256_of(healed) == deposit.ciphertext_sha256
    assert [path.read_bytes() for path in quarantined(settings, "replica")] == [damaged]
    out, err = capsys.readouterr()
    assert f"healed: replica:{key}" in out
    assert "1 healed, no problems" in out
    assert "problem:" not in err


def test_vault_scrub_command_fails_when_no_good_copy_is_left(deposit_one, settings, capsys) -> None:
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    damage(site_root(settings, "primary") / key, at=150)
    damage(site_root(settings, "replica") / key, at=300)
    before = snapshot(settings)

    with pytest.raises(CommandError, match="2 problem"):
        call_command("vault", "scrub")

    _, err = capsys.readouterr()
    assert f"problem: primary:{key}: damaged, and no good copy anywhere" in err
    assert f"problem: replica:{key}: damaged, and no good copy anywhere" in err
    assert snapshot(settings) == before


# -- S3 buckets --------------------------------------------------------------------------------


@pytest.fixture
def s3_admin(s3_endpoint: str):
    return s3_client(s3_endpoint)


def use_s3_sites(settings, s3_admin, endpoints: list[str]) -> list[str]:
    """Point the vault at one new bucket per endpoint (primary, replica1, replica2...), made
    ready as an operator would (``ensure_ready`` turns versioning on); return the buckets."""
    buckets = [new_bucket(s3_admin) for _ in endpoints]
    names = ["primary"] + [f"replica{number}" for number in range(1, len(endpoints))]
    settings.ESCROW_SITES = [
        s3_site_config(name, bucket, endpoint)
        for name, bucket, endpoint in zip(names, buckets, endpoints, strict=True)
    ]
    for site in all_sites():
        assert site.ensure_ready().versioning
    return buckets


def versions(s3_admin, bucket: str, key: str) -> list[dict]:
    listing = s3_admin.list_object_versions(Bucket=bucket, Prefix=key)
    return [version for version in listing.get("Versions", []) if version["Key"] == key]


def current_bytes(s3_admin, bucket: str, key: str) -> bytes:
    return s3_admin.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_s3_scrub_heals_bit_rot_in_a_replica_and_keeps_the_damaged_version(
    deposit_one, settings, s3_admin, s3_endpoint: str
) -> None:
    primary, replica1, replica2 = use_s3_sites(settings, s3_admin, [s3_endpoint] * 3)
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    good = current_bytes(s3_admin, primary, key)
    assert sha256_of(good) == deposit.ciphertext_sha256
    rotten = bytearray(good)
    rotten[200] ^= 0x01
    # Bit rot at the provider: other bytes under the key, the metadata still claiming the digest.
    rot = s3_admin.put_object(
        Bucket=replica1,
        Key=key,
        Body=bytes(rotten),
        Metadata={"sha256": deposit.ciphertext_sha256},
    )

    recorded = DepositCopy.objects.get(deposit=deposit, site="replica1", kind="sealed")

    repairs = vault_scrub()

    assert current_bytes(s3_admin, replica1, key) == good
    kept = versions(s3_admin, replica1, key)
    assert len(kept) == 3  # the original, the rotten one and the healed one: nothing erased
    assert rot["VersionId"] in {version["VersionId"] for version in kept}
    [healed] = [version for version in kept if version["IsLatest"]]
    # The rot came as a new version over the recorded one: scrub names all three versions
    # and records the healed one.
    assert repairs == SiteRepairs(
        healed=[
            f"replica1:{key}: the recorded version {recorded.version_id} was replaced by "
            f"damaged version {rot['VersionId']}; healed as version {healed['VersionId']}"
        ]
    )
    recorded.refresh_from_db()
    assert recorded.version_id == healed["VersionId"]
    damaged = s3_admin.get_object(Bucket=replica1, Key=key, VersionId=rot["VersionId"])
    assert damaged["Body"].read() == bytes(rotten)
    # The good copies were only read.
    assert len(versions(s3_admin, primary, key)) == 1
    assert len(versions(s3_admin, replica2, key)) == 1
    assert vault_scrub() == SiteRepairs()


def test_s3_scrub_without_versioning_reports_the_damage_instead_of_overwriting_it(
    deposit_one, settings, s3_admin, s3_endpoint: str
) -> None:
    # Healing over a bucket without versioning would destroy the damaged bytes; scrub refuses.
    buckets = [new_bucket(s3_admin) for _ in range(2)]
    settings.ESCROW_SITES = [
        s3_site_config("primary", buckets[0], s3_endpoint),
        s3_site_config("replica1", buckets[1], s3_endpoint),
    ]
    deposit = deposit_one()
    key = deposit.object_key("sealed")
    s3_admin.put_object(Bucket=buckets[1], Key=key, Body=b"rotten")

    repairs = vault_scrub()

    assert repairs.healed == []
    [problem] = repairs.problems
    assert problem.startswith(f"replica1:{key}: ")
    assert "versioning is off" in problem
    assert current_bytes(s3_admin, buckets[1], key) == b"rotten"


def test_s3_reconcile_copies_what_a_replica_missed_while_it_was_down(
    deposit_one, settings, s3_admin, s3_endpoint: str, flaky_s3_endpoint
) -> None:
    # Issue 6, "kill the sync mid-way": replication reaches replica1, then replica2's endpoint
    # vanishes and the sync stops there. Once it is back, reconcile fills in what is missing.
    primary, replica1, replica2 = use_s3_sites(
        settings, s3_admin, [s3_endpoint, s3_endpoint, flaky_s3_endpoint.endpoint_url]
    )
    deposit = deposit_one(replicate=False)
    flaky_s3_endpoint.stop()
    with pytest.raises(SiteError) as stopped:
        deposit_replicate_copies(deposit=deposit)
    assert stopped.value.site == "replica2"
    assert stopped.value.transient
    deposit.refresh_from_db()
    assert deposit.state == "stored"
    for kind in KINDS:
        assert len(versions(s3_admin, replica1, deposit.object_key(kind))) == 1
        assert versions(s3_admin, replica2, deposit.object_key(kind)) == []

    flaky_s3_endpoint.start()
    repairs = vault_reconcile()

    assert sorted(repairs.copied) == sorted(
        f"replica2:{deposit.object_key(kind)}" for kind in KINDS
    )
    assert repairs.problems == []
    for kind in KINDS:
        key = deposit.object_key(kind)
        assert sha256_of(current_bytes(s3_admin, replica2, key)) == expected_sha256(deposit, kind)
        copy = DepositCopy.objects.get(deposit=deposit, site="replica2", kind=kind)
        assert copy.version_id == versions(s3_admin, replica2, key)[0]["VersionId"]
        # Nothing was written twice where it had already arrived.
        assert len(versions(s3_admin, primary, key)) == 1
        assert len(versions(s3_admin, replica1, key)) == 1
    assert vault_reconcile() == SiteRepairs()


def test_s3_reconcile_fills_a_replica_added_later(
    deposit_one, settings, s3_admin, s3_endpoint: str
) -> None:
    primary, _, replica2 = use_s3_sites(settings, s3_admin, [s3_endpoint] * 3)
    settings.ESCROW_SITES = settings.ESCROW_SITES[:2]
    deposit = deposit_one()
    settings.ESCROW_SITES = [
        *settings.ESCROW_SITES,
        s3_site_config("replica2", replica2, s3_endpoint),
    ]

    repairs = vault_reconcile()

    assert sorted(repairs.copied) == sorted(
        f"replica2:{deposit.object_key(kind)}" for kind in KINDS
    )
    for kind in KINDS:
        key = deposit.object_key(kind)
        assert current_bytes(s3_admin, replica2, key) == current_bytes(s3_admin, primary, key)
