"""Stored documents: kept in the primary at once, copied to every replica, read back intact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.conf import settings

from config.storage_sites import default_sites
from records.models import StoredFile
from records.services.files import stored_file_open, stored_file_put, stored_file_replicate
from vault.site_clients import all_sites
from vault.sites import SiteError, StorageSiteClient

pytestmark = pytest.mark.django_db

BODY = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def put(key: str = "invoices/2026/2026-00001.pdf", body: bytes = BODY) -> StoredFile:
    return stored_file_put(
        key=key,
        source=body,
        purpose=StoredFile.Purpose.INVOICE,
        content_type="application/pdf",
        filename="invoice-2026-00001.pdf",
    )


@pytest.fixture
def three_sites(settings, tmp_path: Path) -> None:
    primary, replica = default_sites(tmp_path / "three")
    third = default_sites(tmp_path / "third")[1] | {"name": "replica2"}
    settings.ESCROW_SITES = [primary, replica, third]


def site_path(site: StorageSiteClient, key: str) -> Path:
    config = next(c for c in settings.ESCROW_SITES if c["name"] == site.name)
    return Path(config["path"]) / key


def remove(site: StorageSiteClient, key: str) -> None:
    """What an operator's mistake or a failing disk could do (sites never delete)."""
    path = site_path(site, key)
    os.chmod(path, 0o600)
    path.unlink()


def test_a_stored_document_opens_with_the_bytes_that_were_stored() -> None:
    stored = put()
    assert (stored.sha256, stored.size) == (hashlib.sha256(BODY).hexdigest(), len(BODY))
    with stored_file_open(stored) as stream:
        assert stream.read() == BODY


def test_a_document_is_in_the_primary_only_until_it_is_replicated() -> None:
    stored = put()  # the replication task runs once the transaction commits
    primary, *replicas = all_sites()
    assert primary.stat(stored.key) is not None
    assert replicas and all(site.stat(stored.key) is None for site in replicas)


def test_replication_gives_every_site_identical_bytes(three_sites) -> None:
    stored = put()
    stored_file_replicate(stored=stored)
    sites = all_sites()
    assert [site.name for site in sites] == ["primary", "replica", "replica2"]
    for site in sites:
        with site.open(stored.key) as stream:
            assert stream.read() == BODY, site.name
        assert site.hash(stored.key) == stored.sha256


def test_a_replica_that_holds_the_document_is_left_alone() -> None:
    stored = put()
    primary, replica = all_sites()
    stored_file_replicate(stored=stored)
    # With the primary copy gone, a second run can only succeed by not reading it.
    remove(primary, stored.key)
    stored_file_replicate(stored=stored)
    with replica.open(stored.key) as stream:
        assert stream.read() == BODY


def test_replication_reads_the_primary_for_a_replica_that_lacks_the_document(
    three_sites,
) -> None:
    stored = put()
    primary, *_ = all_sites()
    remove(primary, stored.key)
    with pytest.raises(SiteError, match="holds no object"):
        stored_file_replicate(stored=stored)


def test_a_damaged_primary_copy_is_not_spread_to_the_replicas() -> None:
    stored = put()
    primary, replica = all_sites()
    path = site_path(primary, stored.key)
    os.chmod(path, 0o600)
    path.write_bytes(BODY[:-1] + b"X")
    with pytest.raises(SiteError):
        stored_file_replicate(stored=stored)
    assert replica.stat(stored.key) is None


def test_opening_a_document_missing_from_the_primary_is_an_error() -> None:
    stored = put()
    remove(all_sites()[0], stored.key)
    with pytest.raises(SiteError, match="holds no object"):
        stored_file_open(stored)
