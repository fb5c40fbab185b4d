"""The configured storage sites as clients: one lazily built client per site.

``vault.sites_s3`` (and with it boto3, about 8 MiB per process) is imported only
when an S3 site is built, so the embedded default's local sites never load it."""

from __future__ import annotations

from typing import cast

from django.conf import settings

from vault.s3_client import LockMode, S3Options
from vault.sites import StorageSite, StorageSiteClient
from vault.sites_local import LocalSite


def site_for(config: StorageSite) -> StorageSiteClient:
    """Return the client for one configured site (cached: one client per site configuration)."""
    # The cache key is the whole configuration, so tests that swap settings.ESCROW_SITES get
    # fresh clients while a production process keeps one lazily created boto3 client per site.
    cache_key = tuple(sorted((name, str(value)) for name, value in config.items()))
    site = _site_cache.get(cache_key)
    if site is None:
        site = _site_cache[cache_key] = _build_site(config)
    return site


_site_cache: dict[tuple[tuple[str, str], ...], StorageSiteClient] = {}


def _build_site(config: StorageSite) -> StorageSiteClient:
    if config["kind"] == "local":
        return LocalSite(config)
    if config["kind"] == "s3":
        from vault.sites_s3 import S3Site

        return S3Site(
            config,
            options=S3Options(
                manage_bucket=settings.ESCROW_S3_MANAGE_BUCKETS,
                object_lock_mode=cast(LockMode, settings.ESCROW_OBJECT_LOCK_MODE),
                object_lock_days=settings.ESCROW_OBJECT_LOCK_DAYS,
            ),
        )
    raise ValueError(f"Storage site {config['name']!r} has unknown kind {config['kind']!r}.")


def all_sites() -> list[StorageSiteClient]:
    """Every configured site, primary first (from ``settings.ESCROW_SITES``)."""
    return [site_for(config) for config in settings.ESCROW_SITES]
