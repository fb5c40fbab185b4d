"""The backup site. Unlike the vault's sites it may delete (retention prunes old
backups), so it refuses to be, or to share a place with, any vault site."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from vault.site_clients import site_for
from vault.sites import SiteError, StorageSite, StorageSiteClient


def _where(site: StorageSite) -> tuple[str, ...]:
    if site["kind"] == "local":
        return ("local", str(Path(site["path"]).resolve()))
    return ("s3", site["endpoint_url"] or "aws", site["bucket"])


class BackupSiteRefused(Exception):
    """The backup site is (inside) a vault site: backups must live elsewhere."""


def backup_site_config() -> StorageSite:
    site: StorageSite = settings.ESCROW_BACKUP_SITE
    where = _where(site)
    for vault in settings.ESCROW_SITES:
        vault_where = _where(vault)
        same = where == vault_where or (
            where[0] == "local" == vault_where[0]
            and (
                Path(where[1]).is_relative_to(vault_where[1])
                or Path(vault_where[1]).is_relative_to(where[1])
            )
        )
        if same:
            raise BackupSiteRefused(
                f"The backup site {site['name']!r} is the vault site {vault['name']!r} (or "
                "inside it): backups must be kept at another site than the original."
            )
    return site


def backup_store() -> StorageSiteClient:
    return site_for(backup_site_config())


def backup_delete(key: str, version_id: str = "") -> None:
    """Remove one expired backup from the backup site (only ever called by pruning)."""
    site = backup_site_config()
    if not key.startswith("backups/"):
        raise SiteError(f"refusing to delete {key!r}: not a backup", site=site["name"])
    if site["kind"] == "local":
        path = Path(site["path"]) / key
        if path.exists():
            os.chmod(path, 0o600)  # stored files are read-only
            path.unlink()
        return
    from botocore.exceptions import BotoCoreError, ClientError

    from vault.s3_client import is_transient

    client = _s3_client(site)
    # On a versioned bucket only deleting the version removes the data.
    extra = {"VersionId": version_id} if version_id else {}
    try:
        client.delete_object(Bucket=site["bucket"], Key=key, **extra)  # type: ignore[attr-defined]
    except (BotoCoreError, ClientError) as error:
        raise SiteError(
            f"could not delete {key!r} from bucket {site['bucket']!r}: {error}",
            site=site["name"],
            transient=is_transient(error),
        ) from error


def _s3_client(site: StorageSite) -> object:
    """A client with the vault's bounded waits: a hung backup site fails the prune
    within seconds instead of holding the worker (see vault.s3_client.S3Options)."""
    from vault.s3_client import create_client

    return create_client(
        endpoint_url=site["endpoint_url"] or None,
        region_name=site["region"] or None,
        aws_access_key_id=site["access_key_id"] or None,
        aws_secret_access_key=site["secret_access_key"] or None,
    )


def open_backup(key: str) -> BinaryIO:
    return backup_store().open(key)
