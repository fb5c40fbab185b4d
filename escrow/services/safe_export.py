"""The notary's safe, exported: usable without this software.

A ZIP, streamed as it is built (constant memory, any size), holding for every
acknowledged deposit its sealed age file, manifest and manifest signature, a
SHA256SUMS file for `sha256sum -c`, and a README that says how to check and
open everything with standard tools."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from accounts.models import User
from escrow.models import Deposit, DepositState
from records.services.audit import audit_record
from vault.keys import system_signing_key
from vault.manifest import public_key_text
from vault.site_clients import all_sites

CHUNK = 1024 * 1024


class _Pipe:
    """A write-only, unseekable file whose bytes are collected for the generator."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def write(self, data: bytes) -> int:
        self.buffer.extend(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _readme(entries: list[tuple[str, Deposit]]) -> str:
    lines = [
        "THE ESCROW SAFE",
        "",
        f"Exported {timezone.now():%Y-%m-%d %H:%M} UTC. One folder per deposit:",
        "  sealed.age      the source archive, encrypted with age (age-encryption.org/v1)",
        "  manifest.json   what the archive holds: every file's path, size and SHA-256",
        "  manifest.sig    the escrow service's Ed25519 signature of manifest.json",
        "",
        "1. Check that nothing changed since it was sealed:",
        "     sha256sum -c SHA256SUMS",
        "2. Open a deposit with your own age identity (the notary's key):",
        "     age -d -i notary-identity.txt -o source.archive <folder>/sealed.age",
        "3. Check the archive against the manifest:",
        "     sha256sum source.archive     (compare with archive.sha256 in manifest.json)",
        "",
        "The manifest signature is by the key " + public_key_text(system_signing_key()) + ".",
        "",
        "Deposits:",
    ]
    for folder, deposit in entries:
        lines.append(
            f"  {folder}  {deposit.product.name} {deposit.version}, archive SHA-256 "
            f"{deposit.archive_sha256}"
        )
    return "\n".join(lines) + "\n"


def safe_export_chunks(*, actor: Any) -> Iterator[bytes]:
    """Yield the ZIP of the safe piece by piece."""
    actor_user: User = actor
    deposits = list(
        Deposit.objects.filter(state=DepositState.ACKNOWLEDGED)
        .select_related("product")
        .order_by("product__slug", "created_at")
    )
    audit_record(action="notary.safe_export", actor=actor_user, details={"deposits": len(deposits)})
    site = all_sites()[0]
    pipe = _Pipe()
    sums = []
    entries = []
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[call-overload]
        for deposit in deposits:
            folder = f"{deposit.product.slug}/{deposit.version}"
            entries.append((folder, deposit))
            for kind, name in (
                ("sealed", "sealed.age"),
                ("manifest", "manifest.json"),
                ("signature", "manifest.sig"),
            ):
                with (
                    site.open(deposit.object_key(kind)) as source,
                    archive.open(f"{folder}/{name}", "w", force_zip64=True) as target,
                ):
                    while chunk := source.read(CHUNK):
                        target.write(chunk)
                        yield pipe.take()
                copy = deposit.copies.filter(site=site.name, kind=kind).first()
                if copy is not None:
                    sums.append(f"{copy.sha256}  {folder}/{name}")
                yield pipe.take()
        archive.writestr("SHA256SUMS", "\n".join(sums) + "\n")
        archive.writestr("README.txt", _readme(entries))
    yield pipe.take()
