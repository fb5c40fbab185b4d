"""Storage sites: verified, idempotent, never-overwriting puts, healing that keeps the bad copy,
links that expire within the hour, and no way to delete (refused even at the botocore level).

S3 tests talk HTTP to moto in server mode (tests/s3server.py); nothing is patched.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tracemalloc
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from django.test import override_settings

from tests.s3server import (
    DeleteGuard,
    FlakyEndpoint,
    MotoServer,
    closed_endpoint_url,
    new_bucket,
    s3_client,
    s3_site_config,
)
from vault import sites_local
from vault.s3_client import S3Options, is_transient
from vault.site_clients import all_sites, site_for
from vault.sites import Healed, InvalidKeyError, SiteError, StorageSite, StoredObject, validate_key
from vault.sites_local import LocalSite
from vault.sites_s3 import S3Site

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


MiB = 1024 * 1024
DEPOSIT = b"age-encryption.org/v1\n-> X25519 example\n" + bytes(range(256)) * 40
DEPOSIT_SHA256 = hashlib.sha256(DEPOSIT).hexdigest()
KEY = "deposits/ledger-pro/1.4.2/source.tar.age"
HOSTILE_KEYS = [
    "../x",
    "/abs",
    "a/../../b",
    "a/./b",
    "a\x00b",
    "a" * 600,
    "",
    "a//b",
    "a/",
    ".quarantine/x",
    "a\\..\\b",
    "caf\u00e9",
    "line\nbreak",
]


def local_config(path: Path) -> StorageSite:
    return StorageSite(
        name="embedded",
        kind="local",
        path=str(path),
        bucket="",
        endpoint_url="",
        region="",
        access_key_id="",
        secret_access_key="",
    )


def put_bytes(site: Any, key: str, data: bytes) -> StoredObject:
    stored: StoredObject = site.put(
        key, io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )
    return stored


def read_all(site: Any, key: str) -> bytes:
    with site.open(key) as stream:
        data: bytes = stream.read()
    return data


# -- S3 fixtures -------------------------------------------------------------------------------


@pytest.fixture
def admin(s3_endpoint: str) -> S3Client:
    """The provider's console, so to speak: set-up and inspection outside the vault code."""
    return s3_client(s3_endpoint)


@pytest.fixture
def s3_configs(admin: S3Client, s3_endpoint: str) -> list[StorageSite]:
    """A primary and two replicas, each a fresh bucket on the moto server."""
    return [
        s3_site_config(name, new_bucket(admin, prefix=name), s3_endpoint)
        for name in ("primary", "replica1", "replica2")
    ]


@pytest.fixture
def primary(s3_configs: list[StorageSite]) -> S3Site:
    return S3Site(s3_configs[0])


def versions(admin: S3Client, bucket: str, key: str) -> list[str]:
    listed = admin.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [str(version["VersionId"]) for version in listed if version["Key"] == key]


# -- S3: storing ------------------------------------------------------------------------------


def test_s3_put_verifies_and_records_digest_and_version(primary: S3Site, admin: S3Client) -> None:
    admin.put_bucket_versioning(
        Bucket=primary.bucket, VersioningConfiguration={"Status": "Enabled"}
    )

    stored = put_bytes(primary, KEY, DEPOSIT)

    assert stored == StoredObject(KEY, len(DEPOSIT), DEPOSIT_SHA256, stored.version_id)
    assert stored.version_id and stored.version_id != "null"
    assert read_all(primary, KEY) == DEPOSIT
    assert primary.hash(KEY) == DEPOSIT_SHA256
    assert primary.stat(KEY) == stored
    head = admin.head_object(Bucket=primary.bucket, Key=KEY)
    assert head["Metadata"] == {"sha256": DEPOSIT_SHA256}
    assert primary.stat("deposits/missing") is None
    with pytest.raises(SiteError, match="holds no object") as missing:
        primary.open("deposits/missing")
    assert missing.value.transient is False


def test_every_configured_site_gets_the_same_verified_object(
    s3_configs: list[StorageSite], tmp_path: Path
) -> None:
    local = local_config(tmp_path / "embedded")
    with override_settings(ESCROW_SITES=[*s3_configs, local]):
        sites = all_sites()
        assert [site.name for site in sites] == ["primary", "replica1", "replica2", "embedded"]
        assert [type(site) for site in sites] == [S3Site, S3Site, S3Site, LocalSite]
        # One client object per site: asking again returns the same instances.
        assert all(again is first for again, first in zip(all_sites(), sites, strict=True))
        for site in sites:
            site.ensure_ready()
            assert put_bytes(site, KEY, DEPOSIT).sha256 == DEPOSIT_SHA256
            assert site.hash(KEY) == DEPOSIT_SHA256


def test_s3_put_of_the_same_content_is_idempotent(primary: S3Site, admin: S3Client) -> None:
    primary.ensure_ready()
    first = put_bytes(primary, KEY, DEPOSIT)

    again = put_bytes(primary, KEY, DEPOSIT)

    assert again == first
    assert versions(admin, primary.bucket, KEY) == [first.version_id]


def test_s3_put_refuses_different_content_and_changes_nothing(
    primary: S3Site, admin: S3Client
) -> None:
    primary.ensure_ready()
    first = put_bytes(primary, KEY, DEPOSIT)

    with pytest.raises(SiteError, match="already holds a different object") as refused:
        put_bytes(primary, KEY, DEPOSIT + b"tampered")

    assert refused.value.transient is False
    assert versions(admin, primary.bucket, KEY) == [first.version_id]
    assert read_all(primary, KEY) == DEPOSIT


@pytest.mark.parametrize("size", [1000, 6 * MiB], ids=["single-put", "multipart"])
def test_s3_put_refuses_a_source_that_breaks_its_promise(
    s3_configs: list[StorageSite], admin: S3Client, size: int
) -> None:
    site = S3Site(s3_configs[0], options=S3Options(part_size=5 * MiB))
    data = os.urandom(size)

    with pytest.raises(SiteError, match="source does not match; nothing stored"):
        site.put(KEY, io.BytesIO(data), sha256="0" * 64, size=size)

    assert site.stat(KEY) is None
    assert admin.list_multipart_uploads(Bucket=site.bucket).get("Uploads", []) == []


def test_s3_multipart_put_round_trips(s3_configs: list[StorageSite]) -> None:
    site = S3Site(s3_configs[1], options=S3Options(part_size=5 * MiB))
    data = os.urandom(11 * MiB + 5)

    stored = put_bytes(site, KEY, data)

    assert stored.size == len(data)
    assert read_all(site, KEY) == data


# -- S3: readiness -----------------------------------------------------------------------------


def test_ensure_ready_turns_versioning_on(primary: S3Site, admin: S3Client) -> None:
    assert "Status" not in admin.get_bucket_versioning(Bucket=primary.bucket)

    report = primary.ensure_ready()

    assert report.versioning is True
    assert "turned versioning on" in report.notes
    assert report.object_lock_mode is None
    assert admin.get_bucket_versioning(Bucket=primary.bucket)["Status"] == "Enabled"
    assert primary.ensure_ready().notes == report.notes[1:]


def test_ensure_ready_refuses_unversioned_bucket_it_may_not_change(
    s3_configs: list[StorageSite], admin: S3Client
) -> None:
    site = S3Site(s3_configs[0], options=S3Options(manage_bucket=False))

    with pytest.raises(SiteError, match=f"versioning is off on bucket '{site.bucket}'"):
        site.ensure_ready()

    assert "Status" not in admin.get_bucket_versioning(Bucket=site.bucket)


def test_ensure_ready_refuses_a_missing_bucket(s3_endpoint: str) -> None:
    site = S3Site(s3_site_config("primary", "no-such-bucket-here", s3_endpoint))

    with pytest.raises(SiteError, match="bucket 'no-such-bucket-here' does not exist"):
        site.ensure_ready()


def test_ensure_ready_sets_object_lock_default_retention(admin: S3Client, s3_endpoint: str) -> None:
    bucket = new_bucket(admin, object_lock=True)
    options = S3Options(object_lock_mode="COMPLIANCE", object_lock_days=30)
    site = S3Site(s3_site_config("primary", bucket, s3_endpoint), options=options)

    report = site.ensure_ready()

    assert (report.object_lock_mode, report.object_lock_days) == ("COMPLIANCE", 30)
    rule = admin.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]
    assert (rule["DefaultRetention"]["Mode"], rule["DefaultRetention"]["Days"]) == (
        "COMPLIANCE",
        30,
    )
    put_bytes(site, KEY, DEPOSIT)
    assert admin.head_object(Bucket=bucket, Key=KEY)["ObjectLockMode"] == "COMPLIANCE"


def test_object_lock_without_a_default_rule_locks_each_upload(
    admin: S3Client, s3_endpoint: str
) -> None:
    bucket = new_bucket(admin, object_lock=True)
    # A site that may not change bucket settings cannot add the default rule itself.
    options = S3Options(manage_bucket=False, object_lock_days=7)
    site = S3Site(s3_site_config("replica1", bucket, s3_endpoint), options=options)

    report = site.ensure_ready()

    assert (report.object_lock_mode, report.object_lock_days) == ("GOVERNANCE", 7)
    assert "each upload gets GOVERNANCE, 7 days" in report.notes[-1]
    put_bytes(site, KEY, DEPOSIT)
    head = admin.head_object(Bucket=bucket, Key=KEY)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=6)


def test_ensure_ready_refuses_lifecycle_rules_that_expire_objects(
    admin: S3Client, s3_endpoint: str, vault_delete_guard: DeleteGuard
) -> None:
    bucket = new_bucket(admin, prefix="scratch")
    # Setting up the hazard needs a lifecycle call, which the guard refuses on vault buckets.
    vault_delete_guard.allow_bucket(bucket)
    admin.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "tidy-up", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 90}}
            ]
        },
    )
    site = S3Site(s3_site_config("primary", bucket, s3_endpoint))

    with pytest.raises(SiteError, match=r"lifecycle rules that expire objects \(tidy-up\)"):
        site.ensure_ready()


# -- S3: links ----------------------------------------------------------------------------------


def test_presigned_url_downloads_the_bytes(primary: S3Site) -> None:
    put_bytes(primary, KEY, DEPOSIT)

    url = primary.presigned_url(KEY, expires_in=3600)

    assert "X-Amz-Expires=3600" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == DEPOSIT


@pytest.mark.parametrize("expires_in", [3601, 86400, 0, -5])
def test_presigned_url_refuses_links_outside_one_hour(primary: S3Site, expires_in: int) -> None:
    with pytest.raises(ValueError, match=r"whole number|at most 3600"):
        primary.presigned_url(KEY, expires_in=expires_in)


# -- S3: streaming ------------------------------------------------------------------------------


class PatternStream(io.RawIOBase):
    """``size`` bytes of a repeated random block, produced on demand (never all in memory)."""

    def __init__(self, size: int, block: bytes) -> None:
        self.remaining = size
        self.block = block

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self.block), self.remaining)
        view[:count] = self.block[:count]
        self.remaining -= count
        return count


def test_64_mib_object_streams_through_in_constant_memory(s3_configs: list[StorageSite]) -> None:
    size, block = 64 * MiB, os.urandom(MiB)
    digest = hashlib.sha256()
    for _ in range(size // MiB):
        digest.update(block)
    site = S3Site(s3_configs[0], options=S3Options(part_size=5 * MiB))
    site.stat(KEY)  # the client (and botocore's service model) is loaded once per process

    tracemalloc.start()
    try:
        stored = site.put(
            KEY, io.BufferedReader(PatternStream(size, block)), sha256=digest.hexdigest(), size=size
        )
        assert site.hash(KEY) == digest.hexdigest()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.size == size
    # One 5 MiB part plus buffers, however large the object (about 7.5 MiB in practice).
    assert peak < 12 * MiB, f"peak {peak / MiB:.1f} MiB"


# -- S3: healing --------------------------------------------------------------------------------


def test_s3_replace_corrupt_heals_with_a_new_version_and_keeps_the_bad_one(
    primary: S3Site, admin: S3Client
) -> None:
    primary.ensure_ready()
    good = put_bytes(primary, KEY, DEPOSIT)
    # Bit rot: different bytes under the same key, with the metadata still claiming the digest.
    rotten = bytearray(DEPOSIT)
    rotten[100] ^= 0x01
    rot = admin.put_object(
        Bucket=primary.bucket, Key=KEY, Body=bytes(rotten), Metadata={"sha256": DEPOSIT_SHA256}
    )
    assert primary.hash(KEY) != DEPOSIT_SHA256
    with pytest.raises(SiteError, match="holds a damaged copy of this object"):
        put_bytes(primary, KEY, DEPOSIT)

    healed = primary.replace_corrupt(
        KEY, io.BytesIO(DEPOSIT), sha256=DEPOSIT_SHA256, size=len(DEPOSIT)
    )

    assert isinstance(healed, Healed)
    assert healed.bad_copy == f"version {rot['VersionId']}"
    assert healed.bad_sha256 == hashlib.sha256(rotten).hexdigest()
    assert primary.hash(KEY) == DEPOSIT_SHA256
    assert set(versions(admin, primary.bucket, KEY)) == {
        good.version_id,
        rot["VersionId"],
        healed.stored.version_id,
    }
    kept = admin.get_object(Bucket=primary.bucket, Key=KEY, VersionId=rot["VersionId"])
    assert kept["Body"].read() == bytes(rotten)


def test_s3_replace_corrupt_refuses_a_good_copy(primary: S3Site, admin: S3Client) -> None:
    primary.ensure_ready()
    good = put_bytes(primary, KEY, DEPOSIT)

    with pytest.raises(SiteError, match="is good"):
        primary.replace_corrupt(KEY, io.BytesIO(DEPOSIT), sha256=DEPOSIT_SHA256, size=len(DEPOSIT))

    assert versions(admin, primary.bucket, KEY) == [good.version_id]


def test_s3_replace_corrupt_refuses_without_versioning(primary: S3Site, admin: S3Client) -> None:
    admin.put_object(Bucket=primary.bucket, Key=KEY, Body=b"rotten")

    with pytest.raises(SiteError, match="versioning is off"):
        primary.replace_corrupt(KEY, io.BytesIO(DEPOSIT), sha256=DEPOSIT_SHA256, size=len(DEPOSIT))

    assert read_all(primary, KEY) == b"rotten"


# -- S3: failures -------------------------------------------------------------------------------


def test_unreachable_endpoint_is_a_transient_site_error() -> None:
    config = s3_site_config("replica1", "vault-replica", closed_endpoint_url())
    site = S3Site(config, options=S3Options(max_attempts=1, connect_timeout=1))

    with pytest.raises(SiteError) as refused:
        site.stat(KEY)
    assert refused.value.transient is True
    assert isinstance(refused.value.__cause__, EndpointConnectionError)
    with pytest.raises(SiteError) as refused:
        put_bytes(site, KEY, DEPOSIT)
    assert refused.value.transient is True


def test_endpoint_outage_is_transient_and_the_objects_survive_it(
    admin: S3Client, flaky_s3_endpoint: FlakyEndpoint
) -> None:
    bucket = new_bucket(admin, prefix="replica1")
    config = s3_site_config("replica1", bucket, flaky_s3_endpoint.endpoint_url)
    site = S3Site(config, options=S3Options(max_attempts=1, connect_timeout=1))
    put_bytes(site, KEY, DEPOSIT)
    port = flaky_s3_endpoint.port

    flaky_s3_endpoint.stop()
    with pytest.raises(SiteError) as refused:
        site.stat(KEY)
    assert refused.value.transient is True

    flaky_s3_endpoint.start()
    assert flaky_s3_endpoint.port == port
    assert site.hash(KEY) == DEPOSIT_SHA256


def test_moto_server_restarts_on_the_same_port() -> None:
    server = MotoServer()
    server.start()
    try:
        client = s3_client(server.endpoint_url)
        new_bucket(client)
        port = server.port

        server.restart()

        assert server.port == port
        # A new process: it answers on the same URL, and starts empty.
        assert client.list_buckets()["Buckets"] == []
    finally:
        server.stop()


def _client_error(status: int, code: str) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_client_error(503, "SlowDown"), True),
        (_client_error(500, "InternalError"), True),
        (_client_error(400, "RequestTimeout"), True),
        (_client_error(429, "TooManyRequests"), True),
        (_client_error(403, "AccessDenied"), False),
        (_client_error(404, "NoSuchBucket"), False),
        (_client_error(412, "PreconditionFailed"), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    ],
)
def test_only_network_throttling_and_server_errors_are_transient(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient


# -- no way to delete ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [LocalSite, S3Site])
def test_sites_have_no_way_to_delete(cls: type) -> None:
    assert [name for name in dir(cls) if "delete" in name.lower()] == []
    assert [name for name in dir(cls) if "remove" in name.lower()] == []


def test_vault_code_calls_no_delete_api() -> None:
    erasing = re.compile(
        r"\bdelete_objects?\b|\bdelete_bucket\w*|\bput_bucket_lifecycle\w*"
        r"|\bDeleteObjects?\b|\bDeleteBucket\w*|\bPutBucketLifecycle\w*"
    )
    vault = Path(sites_local.__file__).parent
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(vault.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if erasing.search(line)
    ]
    assert offenders == []


def test_the_guard_refuses_erasing_calls_from_any_client(
    primary: S3Site, s3_endpoint: str, vault_delete_guard: DeleteGuard
) -> None:
    put_bytes(primary, KEY, DEPOSIT)
    fresh = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    with vault_delete_guard.expect_refusal():
        fresh.delete_object(Bucket=primary.bucket, Key=KEY)
    with vault_delete_guard.expect_refusal():
        fresh.delete_objects(Bucket=primary.bucket, Delete={"Objects": [{"Key": KEY}]})
    with vault_delete_guard.expect_refusal():
        fresh.delete_bucket(Bucket=primary.bucket)
    with vault_delete_guard.expect_refusal():
        fresh.put_bucket_lifecycle_configuration(
            Bucket=primary.bucket, LifecycleConfiguration={"Rules": []}
        )
    with vault_delete_guard.expect_refusal():
        fresh.generate_presigned_url("delete_object", Params={"Bucket": primary.bucket, "Key": KEY})
    with vault_delete_guard.expect_refusal():
        fresh.put_bucket_versioning(
            Bucket=primary.bucket, VersioningConfiguration={"Status": "Suspended"}
        )
    # And the S3 site's own client is covered as well.
    with vault_delete_guard.expect_refusal():
        primary.client.delete_object(Bucket=primary.bucket, Key=KEY)

    assert read_all(primary, KEY) == DEPOSIT
    assert vault_delete_guard.violations == []


# -- keys -----------------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalSite:
    site = LocalSite(local_config(tmp_path / "vault"))
    site.ensure_ready()
    return site


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda key: repr(key)[:20])
def test_it_rejects_hostile_keys(key: str, local: LocalSite, primary: S3Site) -> None:
    for site in (local, primary):
        with pytest.raises(InvalidKeyError):
            put_bytes(site, key, DEPOSIT)
        with pytest.raises(InvalidKeyError):
            site.stat(key)
        with pytest.raises(InvalidKeyError):
            site.open(key)
        with pytest.raises(InvalidKeyError):
            site.presigned_url(key, expires_in=60)
    assert list(local.keys()) == []
    assert list(primary.keys()) == []
    assert sorted(os.listdir(local.root)) == []


def test_it_accepts_ordinary_keys() -> None:
    for key in (KEY, "a", "manifests/2025/01/x_y-z.json", "a" * 128):
        assert validate_key(key) == key


def test_keys_lists_by_prefix_on_both_kinds(local: LocalSite, primary: S3Site) -> None:
    names = ["deposits/a/1.age", "deposits/a/2.age", "deposits/b/1.age", "manifests/a.json"]
    for site in (local, primary):
        for name in names:
            put_bytes(site, name, name.encode())

        assert list(site.keys()) == names
        assert list(site.keys("deposits/a/")) == names[:2]
        assert list(site.keys("deposits/")) == names[:3]
        assert list(site.keys("nothing/")) == []
        with pytest.raises(InvalidKeyError):
            list(site.keys("../"))


# -- local folder ---------------------------------------------------------------------------------


def test_local_put_stores_a_verified_read_only_file(local: LocalSite) -> None:
    stored = put_bytes(local, KEY, DEPOSIT)

    path = local.root / KEY
    assert stored == StoredObject(KEY, len(DEPOSIT), DEPOSIT_SHA256)
    assert path.read_bytes() == DEPOSIT
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert read_all(local, KEY) == DEPOSIT
    assert local.hash(KEY) == DEPOSIT_SHA256
    assert local.stat(KEY) == StoredObject(KEY, len(DEPOSIT), None)
    assert local.stat("deposits/missing") is None
    # No temporary files left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["source.tar.age"]


def test_local_put_of_the_same_content_is_idempotent(local: LocalSite) -> None:
    first = put_bytes(local, KEY, DEPOSIT)
    inode = (local.root / KEY).stat().st_ino

    assert put_bytes(local, KEY, DEPOSIT) == first
    assert (local.root / KEY).stat().st_ino == inode


@pytest.mark.parametrize("existing", [DEPOSIT, b"written by someone else"])
def test_local_put_never_replaces_an_existing_file(local: LocalSite, existing: bytes) -> None:
    path = local.root / KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(existing)

    with pytest.raises(SiteError, match="already holds a different object") as refused:
        put_bytes(local, KEY, DEPOSIT[:-1] + b"!")

    assert refused.value.transient is False
    assert path.read_bytes() == existing
    assert [p.name for p in path.parent.iterdir()] == ["source.tar.age"]


def test_local_put_refuses_a_source_that_breaks_its_promise(local: LocalSite) -> None:
    with pytest.raises(SiteError, match="source does not match; nothing stored"):
        local.put(KEY, io.BytesIO(DEPOSIT), sha256=DEPOSIT_SHA256, size=len(DEPOSIT) - 1)
    with pytest.raises(SiteError, match="source does not match; nothing stored"):
        local.put(KEY, io.BytesIO(DEPOSIT), sha256="0" * 64, size=len(DEPOSIT))

    assert local.stat(KEY) is None
    assert [p.name for p in (local.root / KEY).parent.iterdir()] == []


def test_local_replace_corrupt_quarantines_the_bad_copy(local: LocalSite) -> None:
    put_bytes(local, KEY, DEPOSIT)
    path = local.root / KEY
    rotten = bytearray(DEPOSIT)
    rotten[7] ^= 0x80
    path.chmod(0o644)
    path.write_bytes(bytes(rotten))  # bit rot in place
    with pytest.raises(SiteError, match="already holds a different object"):
        put_bytes(local, KEY, DEPOSIT)

    healed = local.replace_corrupt(
        KEY, io.BytesIO(DEPOSIT), sha256=DEPOSIT_SHA256, size=len(DEPOSIT)
    )

    assert path.read_bytes() == DEPOSIT
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert healed.stored == StoredObject(KEY, len(DEPOSIT), DEPOSIT_SHA256)
    assert healed.bad_copy.startswith(f".quarantine/{KEY}.")
    assert (local.root / healed.bad_copy).read_bytes() == bytes(rotten)
    assert healed.bad_sha256 == hashlib.sha256(rotten).hexdigest()
    # The quarantine is not part of the vault's key space.
    assert list(local.keys()) == [KEY]


def test_local_replace_corrupt_refuses_a_good_copy_or_a_missing_one(local: LocalSite) -> None:
    put_bytes(local, KEY, DEPOSIT)

    with pytest.raises(SiteError, match="is good"):
        local.replace_corrupt(KEY, io.BytesIO(DEPOSIT), sha256=DEPOSIT_SHA256, size=len(DEPOSIT))
    with pytest.raises(SiteError, match="use put"):
        local.replace_corrupt("other", io.BytesIO(DEPOSIT), sha256=DEPOSIT_SHA256, size=1)

    assert not (local.root / ".quarantine").exists()


def test_local_site_has_no_presigned_links(local: LocalSite) -> None:
    put_bytes(local, KEY, DEPOSIT)

    with pytest.raises(NotImplementedError, match="signed download URL"):
        local.presigned_url(KEY, expires_in=60)
    with pytest.raises(ValueError, match="at most 3600"):
        local.presigned_url(KEY, expires_in=7200)


def test_local_site_refuses_a_symlink_out_of_its_folder(local: LocalSite, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local.root / "deposits").symlink_to(outside)

    with pytest.raises(SiteError, match="outside the site folder"):
        put_bytes(local, "deposits/x", DEPOSIT)

    assert list(outside.iterdir()) == []


def test_local_ensure_ready_creates_the_folder(tmp_path: Path) -> None:
    config = local_config(tmp_path / "a" / "b")

    report = site_for(config).ensure_ready()

    assert (tmp_path / "a" / "b").is_dir()
    assert (report.kind, report.versioning) == ("local", False)
