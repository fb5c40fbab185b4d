"""Documents in the storage sites, and the expiring links they are downloaded through."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from django.db import transaction

from records.models import StoredFile
from records.queue import enqueue_on_commit
from vault.site_clients import all_sites
from vault.sites import hash_stream


def stored_file_put(
    *, key: str, source: bytes | Path, purpose: str, content_type: str, filename: str
) -> StoredFile:
    """Store a document in the primary site (read back and verified) and queue its
    copies to the replicas. Storing the same key again returns the existing record."""
    existing = StoredFile.objects.filter(key=key).first()
    if existing is not None:
        return existing
    stream: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    with stream:
        sha256, size = hash_stream(stream)
        stream.seek(0)
        all_sites()[0].put(key, stream, sha256=sha256, size=size)
    with transaction.atomic():
        stored, _ = StoredFile.objects.get_or_create(
            key=key,
            defaults={
                "purpose": purpose,
                "content_type": content_type,
                "filename": filename,
                "sha256": sha256,
                "size": size,
            },
        )
        enqueue_on_commit("records.stored_file_replicate", stored_file_id=stored.pk)
    return stored


def stored_file_replicate(*, stored: StoredFile) -> None:
    """Copy a document from the primary to every replica that lacks it, verified."""
    sites = all_sites()
    for replica in sites[1:]:
        if replica.stat(stored.key) is not None:
            continue
        with sites[0].open(stored.key) as stream:
            replica.put(stored.key, stream, sha256=stored.sha256, size=stored.size)


def stored_file_open(stored: StoredFile) -> BinaryIO:
    """Read a stored document from the primary site."""
    return all_sites()[0].open(stored.key)
