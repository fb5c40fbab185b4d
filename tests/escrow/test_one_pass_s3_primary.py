"""A deposit sealed in one pass into an S3 primary, with a byte damaged on the way there.

The sealed file goes up as a multipart upload while the body arrives (vault/one_pass.py).
moto, like a provider that ignores Content-MD5, stores a part whatever arrived, so the
site compares the part's ETag with the MD5 it sent: the deposit fails as the part comes
back, before anything is visible, and the same upload again completes it. Through the
real deposit API, the moto server the suite starts, the fault suite's relay in front of
it (``flaky_s3_endpoint``) and a local replica.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.test import Client

from accounts.models import Product, User
from escrow.models import Deposit, DepositCopy
from escrow.services.tokens import token_create
from tests import archives
from tests.s3server import FlakyEndpoint, new_bucket, s3_client, s3_site_config
from vault import age
from vault.age import X25519Identity
from vault.site_clients import all_sites

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

URL = "/api/v1/products/ledger-pro/deposits/{version}"
MiB = 1024 * 1024


@pytest.fixture
def s3_admin(s3_endpoint: str) -> S3Client:
    """The provider's console: inspection outside the vault code."""
    return s3_client(s3_endpoint)


@pytest.fixture
def primary_bucket(settings: Any, s3_admin: S3Client, flaky_s3_endpoint: FlakyEndpoint) -> str:
    """The primary site is a versioned bucket reached through the relay; the replica
    stays a local folder."""
    bucket = new_bucket(s3_admin, prefix="primary")
    settings.ESCROW_SITES = [
        s3_site_config("primary", bucket, flaky_s3_endpoint.endpoint_url),
        settings.ESCROW_SITES[1],
    ]
    all_sites()[0].ensure_ready()
    return bucket


@pytest.fixture
def pipeline(
    product: Product,
    staff: User,
    notary_identity: X25519Identity,
    django_capture_on_commit_callbacks: Any,
) -> Callable[[str, bytes], Any]:
    """A release pipeline's deposit request; replication runs in-process on commit."""
    issued = token_create(product=product, label="CI", actor=staff)
    client = Client()

    def put(version: str, body: bytes) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return client.put(
                URL.format(version=version),
                data=body,
                content_type="application/octet-stream",
                HTTP_AUTHORIZATION=f"Bearer {issued.secret}",
                HTTP_X_ARCHIVE_SHA256=archives.sha256(body),
            )

    return put


def two_part_tar_gz() -> bytes:
    """A tar.gz whose sealed file takes two 8 MiB parts (random bytes do not compress)."""
    return archives.tar_gz({**archives.PROJECT, "project/assets/blob.bin": os.urandom(12 * MiB)})


def test_a_part_damaged_on_the_way_fails_the_deposit_and_leaves_nothing(
    pipeline: Callable[[str, bytes], Any],
    primary_bucket: str,
    flaky_s3_endpoint: FlakyEndpoint,
    s3_admin: S3Client,
    settings: Any,
    notary_identity: X25519Identity,
) -> None:
    body = two_part_tar_gz()
    # moto answers each request on a connection of its own, and only part 1 (8 MiB, the
    # smaller part 2 follows) carries 5 MiB towards the bucket.
    flaky_s3_endpoint.damage_once(5 * MiB)

    response = pipeline("1.0.0", body)

    assert response.status_code == 503, response.content
    assert flaky_s3_endpoint.damaged == 1
    deposit = Deposit.objects.get()
    assert (deposit.state, deposit.failed_from) == ("failed", "received")
    assert re.match(
        r"store: storage site 'primary': part 1 of 'deposits/ledger-pro/\d+/[^']+' "
        r"arrived damaged \(the site received bytes with MD5 [0-9a-f]{32}, not the "
        r"[0-9a-f]{32} sent\); nothing stored\. Nothing of this upload was kept",
        deposit.problem,
    ), deposit.problem
    assert response.json()["problem"] == deposit.problem
    # Not even an older version: nothing of the deposit ever became an object.
    stored = s3_admin.list_object_versions(
        Bucket=primary_bucket, Prefix=f"deposits/ledger-pro/{deposit.pk}/"
    )
    assert stored.get("Versions", []) == []
    assert s3_admin.list_multipart_uploads(Bucket=primary_bucket).get("Uploads", []) == []
    assert not DepositCopy.objects.exists()
    assert list(settings.ESCROW_INTAKE_DIR.iterdir()) == []

    again = pipeline("1.0.0", body)

    assert again.status_code == 202, again.content
    assert again.json()["id"] == deposit.pk
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")
    assert DepositCopy.objects.count() == 6
    assert s3_admin.list_multipart_uploads(Bucket=primary_bucket).get("Uploads", []) == []
    assert list(settings.ESCROW_INTAKE_DIR.iterdir()) == []
    # The sealed file in the bucket is whole: it opens with the notary's key to the body.
    sealed = s3_admin.get_object(Bucket=primary_bucket, Key=deposit.object_key("sealed"))
    opened = io.BytesIO()
    age.decrypt(io.BytesIO(sealed["Body"].read()), opened, [notary_identity])
    assert opened.getvalue() == body
