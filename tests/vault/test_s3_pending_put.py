"""One-pass writes to an S3 site (``S3Site.begin_put``): nothing visible before ``commit``,
nothing left behind after a refusal, an abort, a network cut or a part damaged on the way,
and one part in memory.

Against the moto server the suite starts (tests/s3server.py), over real HTTP; the
network cut and the damaged byte go through the fault suite's relay (``FlakyEndpoint``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.s3server import FlakyEndpoint, new_bucket, s3_client, s3_site_config
from vault.s3_client import S3Options
from vault.sites import InvalidKeyError, PendingObject, SiteError, StorageSite, StoredObject
from vault.sites_s3 import S3Site, _md5_in_etag

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
KEY = "deposits/ledger-pro/1.4.2/source.tar.age"
#: The smallest part S3 allows, so that a few MiB make a multipart object.
SMALL_PARTS = S3Options(part_size=5 * MiB)


@pytest.fixture
def admin(s3_endpoint: str) -> S3Client:
    """The provider's console: set-up and inspection outside the vault code."""
    return s3_client(s3_endpoint)


@pytest.fixture
def config(admin: S3Client, s3_endpoint: str) -> StorageSite:
    return s3_site_config("primary", new_bucket(admin, prefix="primary"), s3_endpoint)


@pytest.fixture
def site(config: StorageSite) -> S3Site:
    """A primary site with versioning on and 5 MiB parts."""
    site = S3Site(config, options=SMALL_PARTS)
    site.ensure_ready()
    return site


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_in_chunks(pending: PendingObject, data: bytes, chunk: int) -> None:
    """Write ``data`` through one reused buffer, as the sealing pipeline does: a site
    that kept a reference instead of copying would store the last chunk over and over."""
    buffer = bytearray(chunk)
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        buffer[: len(piece)] = piece
        pending.write(memoryview(buffer)[: len(piece)])


def uploads_in(admin: S3Client, bucket: str) -> list[str]:
    """The keys of multipart uploads started and neither completed nor aborted."""
    return [
        upload["Key"] for upload in admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


def read_back(admin: S3Client, bucket: str, key: str) -> bytes:
    return admin.get_object(Bucket=bucket, Key=key)["Body"].read()


def key_absent(admin: S3Client, bucket: str, key: str) -> bool:
    return "Contents" not in admin.list_objects_v2(Bucket=bucket, Prefix=key)


# -- committing -------------------------------------------------------------------------------


def test_a_multipart_object_is_invisible_until_commit_then_byte_exact(
    site: S3Site, admin: S3Client
) -> None:
    data = os.urandom(11 * MiB + 5)

    with site.begin_put(KEY) as pending:
        write_in_chunks(pending, data, MiB + 3)
        assert uploads_in(admin, site.bucket) == [KEY]
        assert key_absent(admin, site.bucket, KEY)
        stored = pending.commit(sha256=sha256_of(data), size=len(data))

    assert (stored.key, stored.size, stored.sha256) == (KEY, len(data), sha256_of(data))
    head = admin.head_object(Bucket=site.bucket, Key=KEY)
    assert stored.version_id == head["VersionId"]
    assert read_back(admin, site.bucket, KEY) == data
    assert uploads_in(admin, site.bucket) == []
    # The digest was only promised, never checked by the site: stat says it does not know.
    found = site.stat(KEY)
    assert found is not None
    assert (found.size, found.sha256) == (len(data), None)
    assert site.hash(KEY) == sha256_of(data)


@pytest.mark.parametrize("size", [0, 1000, 5 * MiB], ids=["empty", "small", "one-full-part"])
def test_an_object_of_at_most_one_part_goes_up_in_one_request_with_its_digest(
    site: S3Site, admin: S3Client, size: int
) -> None:
    data = os.urandom(size)

    with site.begin_put(KEY) as pending:
        write_in_chunks(pending, data, 64 * 1024)
        stored = pending.commit(sha256=sha256_of(data), size=size)

    assert read_back(admin, site.bucket, KEY) == data
    # Hashed in memory before it was sent, so the digest is recorded as put records it.
    assert site.stat(KEY) == stored
    assert stored.sha256 == sha256_of(data)
    assert uploads_in(admin, site.bucket) == []


def test_a_small_object_that_breaks_its_promise_is_refused(site: S3Site, admin: S3Client) -> None:
    pending = site.begin_put(KEY)
    pending.write(b"the real bytes")

    with pytest.raises(SiteError, match="source does not match; nothing stored"):
        pending.commit(sha256=sha256_of(b"other bytes!!!"), size=14)

    assert key_absent(admin, site.bucket, KEY)


def test_commit_with_the_wrong_size_stores_nothing_and_leaves_no_upload(
    site: S3Site, admin: S3Client
) -> None:
    data = os.urandom(6 * MiB)
    pending = site.begin_put(KEY)
    pending.write(data)
    assert uploads_in(admin, site.bucket) == [KEY]

    with pytest.raises(SiteError, match=f"received {len(data)} bytes, not the {len(data) + 1}"):
        pending.commit(sha256=sha256_of(data), size=len(data) + 1)

    assert key_absent(admin, site.bucket, KEY)
    assert uploads_in(admin, site.bucket) == []
    with pytest.raises(SiteError, match=r"already ended \(by abort\)"):
        pending.write(b"more")


def test_commit_never_replaces_different_content(site: S3Site, admin: S3Client) -> None:
    old = b"the deposit stored first"
    admin.put_object(Bucket=site.bucket, Key=KEY, Body=old, Metadata={"sha256": sha256_of(old)})
    new = os.urandom(6 * MiB)

    with site.begin_put(KEY) as pending:
        pending.write(new)
        with pytest.raises(SiteError, match="already holds a different object"):
            pending.commit(sha256=sha256_of(new), size=len(new))

    assert read_back(admin, site.bucket, KEY) == old
    assert len(admin.list_object_versions(Bucket=site.bucket, Prefix=KEY)["Versions"]) == 1
    assert uploads_in(admin, site.bucket) == []


@pytest.mark.parametrize(
    ("size", "operation"),
    [(1000, "PutObject"), (6 * MiB, "CompleteMultipartUpload")],
    ids=["one-request", "multipart"],
)
def test_a_writer_slipping_in_before_commit_is_not_overwritten(
    site: S3Site, admin: S3Client, size: int, operation: str
) -> None:
    theirs = b"another writer got there first"
    mine = os.urandom(size)

    def write_theirs(**_: Any) -> None:
        admin.put_object(Bucket=site.bucket, Key=KEY, Body=theirs)

    # Between commit's look at the key and its conditional write, another writer stores.
    site.client.meta.events.register_first(f"before-call.s3.{operation}", write_theirs)
    with site.begin_put(KEY) as pending:
        pending.write(mine)
        with pytest.raises(SiteError, match="already holds a different object"):
            pending.commit(sha256=sha256_of(mine), size=size)

    assert read_back(admin, site.bucket, KEY) == theirs
    assert uploads_in(admin, site.bucket) == []


def test_commit_of_content_already_there_returns_it_like_put(site: S3Site, admin: S3Client) -> None:
    data = os.urandom(6 * MiB)
    first = site.begin_put(KEY)
    first.write(data)
    kept = first.commit(sha256=sha256_of(data), size=len(data))

    with site.begin_put(KEY) as again:
        again.write(data)
        stored = again.commit(sha256=sha256_of(data), size=len(data))

    assert stored == kept
    assert len(admin.list_object_versions(Bucket=site.bucket, Prefix=KEY)["Versions"]) == 1
    assert uploads_in(admin, site.bucket) == []


@pytest.mark.parametrize("size", [1000, 6 * MiB], ids=["one-request", "multipart"])
def test_object_lock_retention_applies_as_for_put(
    admin: S3Client, s3_endpoint: str, size: int
) -> None:
    bucket = new_bucket(admin, object_lock=True)
    # A site that may not set the bucket's default rule locks each upload itself.
    options = S3Options(manage_bucket=False, object_lock_days=7, part_size=5 * MiB)
    site = S3Site(s3_site_config("primary", bucket, s3_endpoint), options=options)
    site.ensure_ready()
    sent: dict[str, str] = {}

    def record(request: Any, **_: Any) -> None:
        for name, value in request.headers.items():
            sent[name] = value.decode() if isinstance(value, bytes) else value

    # moto keeps the lock of a single PutObject but drops that of a multipart upload
    # (AWS keeps both), so the headers that left for the site are what is checked.
    site.client.meta.events.register("before-send.s3.PutObject", record)
    site.client.meta.events.register("before-send.s3.CreateMultipartUpload", record)
    data = os.urandom(size)

    with site.begin_put(KEY) as pending:
        pending.write(data)
        pending.commit(sha256=sha256_of(data), size=size)

    assert sent["x-amz-object-lock-mode"] == "GOVERNANCE"
    retain_until = datetime.fromisoformat(sent["x-amz-object-lock-retain-until-date"])
    assert retain_until > datetime.now(UTC) + timedelta(days=6)
    if size < options.part_size:
        assert admin.head_object(Bucket=bucket, Key=KEY)["ObjectLockMode"] == "GOVERNANCE"


def test_begin_put_refuses_a_hostile_key(site: S3Site) -> None:
    with pytest.raises(InvalidKeyError):
        site.begin_put("../outside")


# -- aborting ---------------------------------------------------------------------------------


def test_abort_midway_leaves_nothing_and_may_be_repeated(site: S3Site, admin: S3Client) -> None:
    pending = site.begin_put(KEY)
    pending.write(os.urandom(7 * MiB))
    assert uploads_in(admin, site.bucket) == [KEY]

    pending.abort()
    pending.abort()

    assert key_absent(admin, site.bucket, KEY)
    assert uploads_in(admin, site.bucket) == []
    with pytest.raises(SiteError, match=r"already ended \(by abort\)"):
        pending.commit(sha256="0" * 64, size=7 * MiB)


def test_abort_of_an_upload_never_started_needs_no_site(admin: S3Client) -> None:
    # Nothing listens on this endpoint: an abort that made a request would fail.
    site = S3Site(s3_site_config("primary", "vault-nowhere", "http://127.0.0.1:9"))
    pending = site.begin_put(KEY)
    pending.write(b"less than one part")

    pending.abort()
    with site.begin_put(KEY):
        pass


def test_leaving_the_block_on_an_exception_aborts(site: S3Site, admin: S3Client) -> None:
    with pytest.raises(RuntimeError, match="sealing failed"), site.begin_put(KEY) as pending:
        pending.write(os.urandom(6 * MiB))
        assert uploads_in(admin, site.bucket) == [KEY]
        raise RuntimeError("sealing failed")

    assert key_absent(admin, site.bucket, KEY)
    assert uploads_in(admin, site.bucket) == []


def test_leaving_the_block_after_commit_keeps_the_object(site: S3Site, admin: S3Client) -> None:
    data = os.urandom(6 * MiB)

    with site.begin_put(KEY) as pending:
        pending.write(data)
        pending.commit(sha256=sha256_of(data), size=len(data))
        pending.abort()

    assert read_back(admin, site.bucket, KEY) == data


# -- failures ---------------------------------------------------------------------------------


def test_a_network_cut_midway_is_transient_and_shows_nothing(
    admin: S3Client, flaky_s3_endpoint: FlakyEndpoint
) -> None:
    bucket = new_bucket(admin, prefix="primary")
    config = s3_site_config("primary", bucket, flaky_s3_endpoint.endpoint_url)
    options = S3Options(part_size=5 * MiB, max_attempts=1, connect_timeout=1)
    site = S3Site(config, options=options)
    pending = site.begin_put(KEY)
    pending.write(os.urandom(6 * MiB))  # the first part is stored
    # The route drops while the second part is on its way.
    flaky_s3_endpoint.throttle(2 * MiB)
    cut = threading.Timer(0.5, flaky_s3_endpoint.stop)
    cut.start()

    with pytest.raises(SiteError, match="store part 2") as refused:
        pending.write(os.urandom(5 * MiB))
    cut.join()

    assert refused.value.transient is True
    # The failed write aborted, but the site could not be told either: the caller is told so.
    assert any("unfinished upload is left" in note for note in refused.value.__notes__)
    assert key_absent(admin, bucket, KEY)
    assert uploads_in(admin, bucket) == [KEY]
    with pytest.raises(SiteError, match=r"already ended \(by abort\)"):
        pending.commit(sha256="0" * 64, size=11 * MiB)

    flaky_s3_endpoint.throttle(None)
    flaky_s3_endpoint.start()
    pending.abort()

    assert key_absent(admin, bucket, KEY)
    assert uploads_in(admin, bucket) == []


def test_memory_stays_at_one_part_however_large_the_object(site: S3Site, admin: S3Client) -> None:
    size, chunk = 64 * MiB, os.urandom(MiB)
    digest = hashlib.sha256()
    site.stat(KEY)  # the client (and botocore's service model) is loaded once per process

    tracemalloc.start()
    try:
        with site.begin_put(KEY) as pending:
            for _ in range(size // MiB):
                pending.write(chunk)
                digest.update(chunk)
            stored = pending.commit(sha256=digest.hexdigest(), size=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert stored.size == size
    assert site.hash(KEY) == digest.hexdigest()
    # One 5 MiB part buffered plus botocore's working memory, whatever the object's size.
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


# -- damage on the way ------------------------------------------------------------------------


@pytest.fixture
def relayed(admin: S3Client, flaky_s3_endpoint: FlakyEndpoint) -> S3Site:
    """A site with 5 MiB parts reached through the relay, which can flip a bit on the way."""
    bucket = new_bucket(admin, prefix="primary")
    config = s3_site_config("primary", bucket, flaky_s3_endpoint.endpoint_url)
    site = S3Site(config, options=S3Options(part_size=5 * MiB, max_attempts=1))
    site.ensure_ready()
    return site


def store(site: S3Site, data: bytes, how: str, key: str = KEY) -> StoredObject:
    """Store ``data`` as a deposit's sealed file goes up (``begin_put``) or as replicas
    and manifests do (``put``)."""
    if how == "put":
        return site.put(key, io.BytesIO(data), sha256=sha256_of(data), size=len(data))
    with site.begin_put(key) as pending:
        write_in_chunks(pending, data, MiB + 3)
        return pending.commit(sha256=sha256_of(data), size=len(data))


def damage_part(site: S3Site, relay: FlakyEndpoint, number: int) -> None:
    """Have the relay flip a bit in the body of part ``number`` of the site's next upload.

    moto closes each connection after one answer, so every request crosses the relay on
    a connection of its own: armed just before that part goes, the damage lands in it."""
    armed = False

    def arm(params: dict[str, Any], **_: Any) -> None:
        nonlocal armed
        if params["PartNumber"] == number and not armed:
            armed = True
            relay.damage_once(MiB)

    site.client.meta.events.register("before-parameter-build.s3.UploadPart", arm)


def content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.mark.parametrize("how", ["begin_put", "put"])
def test_every_part_and_every_single_request_carries_its_md5(site: S3Site, how: str) -> None:
    sent: list[str] = []

    def record(request: Any, **_: Any) -> None:
        value = request.headers["Content-MD5"]
        sent.append(value.decode() if isinstance(value, bytes) else value)

    # What S3 checks each body against (BadDigest) is the header as it left for the site.
    for operation in ("UploadPart", "PutObject"):
        site.client.meta.events.register(f"before-send.s3.{operation}", record)
    large, small = os.urandom(11 * MiB), os.urandom(1000)

    store(site, large, how)
    store(site, small, how, key=f"{KEY}.small")

    parts = [large[start : start + 5 * MiB] for start in range(0, len(large), 5 * MiB)]
    assert sent == [content_md5(body) for body in [*parts, small]]


@pytest.mark.parametrize(
    ("how", "size"),
    [("begin_put", 11 * MiB), ("begin_put", 10 * MiB), ("put", 11 * MiB)],
    ids=["one-pass-while-writing", "one-pass-at-commit", "put"],
)
def test_a_part_damaged_on_the_way_is_refused_and_leaves_nothing(
    relayed: S3Site, admin: S3Client, flaky_s3_endpoint: FlakyEndpoint, how: str, size: int
) -> None:
    data = os.urandom(size)
    # moto stores what arrives whatever its Content-MD5 says (S3 would refuse it).
    damage_part(relayed, flaky_s3_endpoint, 2)

    with pytest.raises(SiteError, match=r"part 2 of '.+' arrived damaged") as refused:
        store(relayed, data, how)

    assert flaky_s3_endpoint.damaged == 1
    assert refused.value.transient is False
    assert str(refused.value).endswith("; nothing stored")
    assert key_absent(admin, relayed.bucket, KEY)
    assert uploads_in(admin, relayed.bucket) == []

    # The next time, the same bytes go up whole.
    store(relayed, data, how)
    assert flaky_s3_endpoint.damaged == 1
    assert read_back(admin, relayed.bucket, KEY) == data
    assert uploads_in(admin, relayed.bucket) == []


@pytest.mark.parametrize("how", ["begin_put", "put"])
def test_a_single_request_damaged_on_the_way_is_refused_naming_the_version(
    relayed: S3Site, admin: S3Client, flaky_s3_endpoint: FlakyEndpoint, how: str
) -> None:
    data = os.urandom(200_000)
    flaky_s3_endpoint.damage_once(100_000)

    with pytest.raises(SiteError, match=f"{KEY!r} arrived damaged") as refused:
        store(relayed, data, how)

    assert flaky_s3_endpoint.damaged == 1
    assert refused.value.transient is False
    assert uploads_in(admin, relayed.bucket) == []
    # S3 refuses such a request (BadDigest) and keeps nothing. A provider that ignores
    # Content-MD5, as moto does, keeps the damaged bytes; one request cannot be taken
    # back, so the error names the version holding them.
    damaged = admin.head_object(Bucket=relayed.bucket, Key=KEY)
    assert f"as version {damaged['VersionId']}: heal it" in str(refused.value)
    assert damaged["ETag"] != f'"{hashlib.md5(data).hexdigest()}"'


MD5 = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("response", "md5"),
    [
        ({"ETag": f'"{MD5}"'}, MD5),
        ({"ETag": f'"{MD5.upper()}"', "ServerSideEncryption": "AES256"}, MD5),
        ({"ETag": f'"{MD5}"', "ServerSideEncryption": "aws:kms"}, None),
        ({"ETag": f'"{MD5}"', "ServerSideEncryption": "aws:kms:dsse"}, None),
        ({"ETag": f'"{MD5}"', "SSECustomerAlgorithm": "AES256"}, None),
        ({"ETag": f'"{MD5}-2"'}, None),
        ({}, None),
    ],
    ids=["plain", "sse-s3", "sse-kms", "dsse-kms", "sse-c", "multipart", "none"],
)
def test_an_etag_is_compared_only_where_it_is_the_md5_of_the_bytes(
    response: dict[str, str], md5: str | None
) -> None:
    # Under SSE-KMS and SSE-C, S3's ETag is no digest of the content: comparing it would
    # refuse every intact part.
    assert _md5_in_etag(response) == md5
