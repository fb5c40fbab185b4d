"""Parse the storage-site list (the vault's primary and replicas) from the environment.

``ESCROW_SITES`` names the sites in order, the first being the primary:
``ESCROW_SITES=primary,replica1``. Each site is then described by
``ESCROW_SITE_<NAME>_URL``: ``file:///absolute/folder`` for a local folder or
``s3://bucket`` for an S3-compatible bucket, with ``_ENDPOINT``, ``_REGION``,
``_ACCESS_KEY_ID`` and ``_SECRET_ACCESS_KEY`` (each secret also as ``_FILE``)
(a replica belongs at another provider: a separate endpoint and account).
Without ``ESCROW_SITES`` the embedded default is two local folders.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.env import env_list, env_str
from vault.sites import StorageSite

_SITE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def default_sites(base: Path) -> list[StorageSite]:
    """The embedded default: a primary and one replica, each a local folder."""
    return [_local(name, base / name) for name in ("primary", "replica")]


def _local(name: str, path: Path) -> StorageSite:
    return StorageSite(
        name=name,
        kind="local",
        path=str(path),
        bucket="",
        endpoint_url="",
        region="",
        access_key_id="",
        secret_access_key="",
    )


def sites_from_env(base: Path) -> list[StorageSite]:
    """Return the configured sites; raise ImproperlyConfigured naming any bad value."""
    names = env_list("ESCROW_SITES")
    if not names:
        return default_sites(base)
    if len(set(names)) != len(names):
        raise ImproperlyConfigured(f"ESCROW_SITES lists a site twice: {','.join(names)}.")
    return [_site_from_env(name) for name in names]


def _site_from_env(name: str, prefix: str | None = None) -> StorageSite:
    if not _SITE_NAME.match(name):
        raise ImproperlyConfigured(
            f"ESCROW_SITES: {name!r} is not a valid site name "
            "(lower-case letters, digits, '-' and '_', starting with a letter)."
        )
    prefix = prefix or f"ESCROW_SITE_{name.upper().replace('-', '_')}"
    url = env_str(f"{prefix}_URL")
    if not url:
        raise ImproperlyConfigured(f"{prefix}_URL is not set for site {name!r}.")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ImproperlyConfigured(f"{prefix}_URL must be file:///absolute/path, not {url!r}.")
        return _local(name, Path(parts.path))
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not _BUCKET_NAME.match(bucket) or parts.path not in ("", "/"):
            raise ImproperlyConfigured(f"{prefix}_URL must be s3://bucket-name, not {url!r}.")
        endpoint = env_str(f"{prefix}_ENDPOINT")
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ImproperlyConfigured(
                f"{prefix}_ENDPOINT must be an http(s) URL, not {endpoint!r}."
            )
        return StorageSite(
            name=name,
            kind="s3",
            path="",
            bucket=bucket,
            endpoint_url=endpoint,
            region=env_str(f"{prefix}_REGION", "us-east-1"),
            access_key_id=env_str(f"{prefix}_ACCESS_KEY_ID"),
            secret_access_key=env_str(f"{prefix}_SECRET_ACCESS_KEY"),
        )
    raise ImproperlyConfigured(f"{prefix}_URL must start with file:// or s3://, not {url!r}.")


def backup_site_from_env(default_folder: Path) -> StorageSite:
    """The backup site: ``ESCROW_BACKUP_SITE_URL`` (and ``_ENDPOINT``, ``_REGION``,
    ``_ACCESS_KEY_ID``, ``_SECRET_ACCESS_KEY`` as for vault sites), or a
    local folder by default. Backups refuse to run when it is one of the vault's sites."""
    if not env_str("ESCROW_BACKUP_SITE_URL"):
        return _local("backup", default_folder)
    return _site_from_env("backup", prefix="ESCROW_BACKUP_SITE")
