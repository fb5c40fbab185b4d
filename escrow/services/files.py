"""Documents in the storage sites, and the expiring links they are downloaded through."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from django.db import transaction
from django.urls import reverse

from escrow.links import link_claims, link_token
from escrow.models import StoredFile, User
from escrow.vault.sites import all_sites, hash_stream

LINK_SALT = "escrow.file-link"


def stored_file_put(
    *, key: str, source: bytes | Path, purpose: str, content_type: str, filename: str
) -> StoredFile:
    """Store a document in the primary site (read back and verified) and queue its
    copies to the replicas. Storing the same key again returns the existing record."""
    from escrow.tasks import stored_file_replicate_task

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
        transaction.on_commit(lambda: stored_file_replicate_task.delay(stored.pk))
    return stored


def stored_file_replicate(*, stored: StoredFile) -> None:
    """Copy a document from the primary to every replica that lacks it, verified."""
    sites = all_sites()
    for replica in sites[1:]:
        if replica.stat(stored.key) is not None:
            continue
        with sites[0].open(stored.key) as stream:
            replica.put(stored.key, stream, sha256=stored.sha256, size=stored.size)


def file_link(*, stored: StoredFile, user: User) -> str:
    """A download path for ``user`` that works for ESCROW_LINK_SECONDS (at most an hour)."""
    token = link_token(salt=LINK_SALT, file=stored.pk, user=user.pk)
    return reverse("file-download", kwargs={"token": token})


def file_from_link(token: str) -> tuple[StoredFile, User, int] | None:
    """The file and user a link was made for and the seconds it has left; ``None`` when
    the link is forged, expired, or its user is no longer active."""
    found = link_claims(token, salt=LINK_SALT)
    if found is None:
        return None
    claims, remaining = found
    stored = StoredFile.objects.filter(pk=claims.get("file", 0)).first()
    user = User.objects.filter(pk=claims.get("user", 0), is_active=True).first()
    if stored is None or user is None:
        return None
    return stored, user, remaining


def open_stored(stored: StoredFile) -> BinaryIO:
    """Read a stored document from the primary site."""
    return all_sites()[0].open(stored.key)
