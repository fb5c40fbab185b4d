"""The notary's safe, exported as a proof kit: usable and checkable without this software.

A ZIP, streamed as it is built (constant memory, any size). For every acknowledged
deposit: its sealed age file, ``manifest.json`` (the stored canonical bytes),
``manifest.json.sig`` (SSHSIG, checkable with ``ssh-keygen -Y verify``), the older raw
``manifest.sig``, ``inclusion.json`` (its RFC 6962 inclusion proof against the latest
signed checkpoint of the deposit log) and a copy of ``allowed_signers``. For the log:
the latest checkpoint (body, C2SP signed note, SSHSIG), every checkpoint a notary
co-signed as a witness with that signature, the consistency proofs between all of
them, and the notaries' witness keys. Then ``escrow_verify.py`` (one file, standard
library plus ``ssh-keygen``), ``kit.json`` (its index), ``SHA256SUMS`` and a README
that walks through every check with ``age``, ``sha256sum``, ``ssh-keygen`` and
``python3`` only, each command written out for this export's own files.

Every proof in one export is against the same checkpoint, read once at the start, so a
deposit sealed while the ZIP streams cannot make the kit disagree with itself."""

from __future__ import annotations

import hashlib
import json
import shlex
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from django.utils import timezone

from accounts.models import User
from escrow.models import Deposit, DepositState
from records.services.audit import audit_record
from transparency.models import Checkpoint, WitnessSignature
from transparency.services import (
    checkpoint_latest,
    consistency_proof_between,
    inclusion_proof_for,
    witness_signatures,
)
from vault import sshsig
from vault.keys import system_signing_key
from vault.manifest import public_key_text
from vault.signed_note import log_origin
from vault.site_clients import all_sites

CHUNK = 1024 * 1024
KIT_FORMAT = "escrow-safe-export/2"
VERIFIER = Path(__file__).resolve().parent.parent / "export_kit" / "escrow_verify.py"
IDENTITY_FILE = "notary-identity.txt"
KIT_NAMESPACES = ("manifest", "checkpoint", "witness")
# vault.archive's format names -> the usual file name extension.
_EXTENSIONS = {
    "zip": "zip",
    "tar": "tar",
    "tar+gzip": "tar.gz",
    "tar+bzip2": "tar.bz2",
    "tar+xz": "tar.xz",
    "tar+zstd": "tar.zst",
}


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


@dataclass
class _Kit:
    """What the export has written so far: the index, the sums and the README's parts."""

    sums: list[str] = field(default_factory=list)
    deposits: list[dict[str, Any]] = field(default_factory=list)
    witnessed: list[dict[str, Any]] = field(default_factory=list)
    consistency: list[dict[str, Any]] = field(default_factory=list)

    def put(self, archive: zipfile.ZipFile, name: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        archive.writestr(name, raw)
        self.sums.append(f"{hashlib.sha256(raw).hexdigest()}  {name}")


def _ssh_verify(signers: str, principal: str, kind: str, signature: str, message: str) -> str:
    return (
        f"ssh-keygen -Y verify -f {signers} -I {principal} -n {sshsig.namespace(kind)} "
        f"-s {signature} < {message}"
    )


def _archive_name(deposit: Deposit) -> str:
    """Where the README's age command writes the opened archive, e.g. ledger-pro-1.0.0.tar.gz."""
    fmt = str((deposit.manifest or {}).get("archive", {}).get("format", ""))
    extension = _EXTENSIONS.get(fmt, "archive")
    return f"{deposit.product.slug}-{deposit.version}.{extension}".replace("/", "-")


def _readme(kit: _Kit, entries: list[tuple[str, Deposit]], latest: Checkpoint | None) -> str:
    q = shlex.quote
    lines = [
        "THE ESCROW SAFE: A PROOF KIT",
        "",
        f"Exported {timezone.now():%Y-%m-%d %H:%M} UTC from the escrow log {log_origin()}.",
        "",
        "Everything here can be opened and checked with four standard tools and nothing",
        "of the escrow service: age, sha256sum, ssh-keygen (OpenSSH 8.2 or later) and",
        "python3 (3.10 or later). Run every command from this folder; lines that start",
        'with "$" are commands, written out for this export\'s own files.',
        "",
        "WHAT IS IN IT",
        "  <product>/<version>/        one folder per acknowledged deposit:",
        "    sealed.age                the source archive, encrypted with age",
        "    manifest.json             what the archive holds: every file's path, size, SHA-256",
        "    manifest.json.sig         the escrow's SSH signature of manifest.json",
        "    manifest.sig              the same key's raw Ed25519 signature (older form)",
        "    inclusion.json            proof that manifest.json is a leaf of the deposit log",
        "    allowed_signers           the escrow's public key, for ssh-keygen",
        "  allowed_signers             the escrow's public key (signer name: escrow)",
        "  witnesses_allowed_signers   the notaries' own witness keys (the escrow never",
        "                              holds their private halves)",
        "  log/checkpoint              the deposit log's latest state: name, size, root hash",
        "  log/checkpoint.note         the same as a C2SP signed note (c2sp.org/signed-note)",
        "  log/checkpoint.sig          the escrow's SSH signature of log/checkpoint",
        "  log/witnessed/...           checkpoints a notary co-signed when acknowledging",
        "  log/consistency/A-B.json    proofs that the log of size B extends the log of size A",
        "  kit.json                    the index of all this, read by the verifier",
        "  escrow_verify.py            the verifier: one Python file, standard library only",
        "  SHA256SUMS                  the SHA-256 of every file",
        "",
        "1. CHECK THAT NOTHING CHANGED SINCE THE EXPORT",
        "  $ sha256sum -c SHA256SUMS",
        "  Proves the files are the ones exported. It does not prove who made them:",
        "  the signatures below do.",
        "",
        "2. CHECK EVERYTHING AT ONCE",
        "  $ python3 escrow_verify.py .",
        "  Checks the sums, every signature (it runs ssh-keygen), every inclusion proof",
        "  and the consistency of all checkpoints, printing one line per check. It ends",
        "  with FAILED and the names of what failed if anything does not hold.",
        "",
        "3. EACH DEPOSIT BY HAND",
        "  Put your age identity (the notary's private key, never part of this export)",
        f"  in this folder as {IDENTITY_FILE}, or change the path in the age commands.",
    ]
    if not entries:
        lines += ["", "  (This export holds no acknowledged deposits.)"]
    for folder, deposit in entries:
        archive_name = _archive_name(deposit)
        lines += [
            "",
            f"  {deposit.product.name} {deposit.version} (deposit {deposit.pk}), in {folder}/",
            "  a. The escrow signed this manifest (only its key verifies the signature):",
            f"  $ (cd {q(folder)} && "
            + _ssh_verify(
                "allowed_signers",
                sshsig.PRINCIPAL,
                "manifest",
                "manifest.json.sig",
                "manifest.json",
            )
            + ")",
            "  b. Open it with your age identity:",
            f"  $ age -d -i {IDENTITY_FILE} -o {q(archive_name)} {q(folder + '/sealed.age')}",
            "  c. The opened archive is the one the manifest describes:",
            f'  $ echo "{deposit.archive_sha256}  {archive_name}" | sha256sum -c -',
        ]
    lines += [
        "",
        "  manifest.json lists the SHA-256 of every file in the archive: after unpacking,",
        "  compare any file with `sha256sum <file>`.",
        "",
        "4. THE DEPOSIT LOG BY HAND",
        "  The log is an append-only Merkle tree (RFC 6962) of every sealed deposit's",
        "  manifest SHA-256. A checkpoint is its signed size and root hash; a notary",
        "  co-signs the checkpoint it saw, so the escrow cannot later show a different",
        "  history without the difference becoming evidence.",
    ]
    if latest is None:
        lines += ["  (The log is still empty.)"]
    else:
        lines += [
            f"  a. The escrow signed the latest checkpoint (size {latest.size}):",
            "  $ "
            + _ssh_verify(
                "allowed_signers",
                sshsig.PRINCIPAL,
                "checkpoint",
                "log/checkpoint.sig",
                "log/checkpoint",
            ),
        ]
    if kit.witnessed:
        lines += [
            "  b. The notaries' co-signatures. First make sure witnesses_allowed_signers",
            "     holds your own witness public key (the .pub file beside the key you",
            "     co-sign with): a co-signature proves nothing if the keys it is checked",
            "     with came from the escrow alone.",
        ]
    else:
        lines += ["  b. (No notary has co-signed a checkpoint yet.)"]
    for witness in kit.witnessed:
        folder = witness["folder"]
        lines += [
            f"     {witness['principal']} co-signed the checkpoint of size {witness['size']}:",
            "  $ "
            + _ssh_verify(
                "witnesses_allowed_signers",
                witness["principal"],
                "witness",
                f"{folder}/witness.sig",
                f"{folder}/checkpoint",
            ),
        ]
    lines += [
        "  c. Each manifest's inclusion proof and the consistency proofs between the",
        "     checkpoints need a few SHA-256 computations each: escrow_verify.py does",
        "     them (step 2) and is short enough to read.",
        "",
        "  What it proves: every deposit above is in the log the escrow signed; each",
        "  checkpoint a notary co-signed is a prefix of the latest one, so no deposit",
        "  was removed or replaced after the notary saw the log. Compare the latest",
        "  checkpoint with ones you co-signed and kept: a different root at the same",
        "  size, or a failed consistency check, is proof that the log was rewritten.",
        "",
        "The escrow's key (also in allowed_signers): "
        + public_key_text(system_signing_key())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def _witness_principal(cosignature: WitnessSignature) -> str:
    return f"notary-{cosignature.notary_id}"


def _write_log(archive: zipfile.ZipFile, kit: _Kit, latest: Checkpoint | None) -> None:
    """The latest checkpoint, the co-signed ones, the witness keys and the consistency
    proofs between every checkpoint size in the kit (consecutive sizes suffice: each
    proof chains to the next)."""
    sizes: set[int] = set()
    if latest is not None:
        sizes.add(latest.size)
        kit.put(archive, "log/checkpoint", latest.body)
        kit.put(archive, "log/checkpoint.note", latest.note)
        kit.put(archive, "log/checkpoint.sig", latest.sshsig)
    signer_lines = ["# The notaries' witness keys: ssh-keygen -Y verify -f this file -I <notary>"]
    seen_keys: set[tuple[str, str]] = set()
    witness_namespace = sshsig.namespace("witness")
    for cosignature in witness_signatures():
        checkpoint = cosignature.signed_checkpoint
        if latest is None or checkpoint.size > latest.size:
            continue  # co-signed after this export's checkpoint was read
        principal = _witness_principal(cosignature)
        folder = f"log/witnessed/{checkpoint.size}-{principal}-{cosignature.pk}"
        kit.put(archive, f"{folder}/checkpoint", checkpoint.body)
        kit.put(archive, f"{folder}/checkpoint.note", checkpoint.note)
        kit.put(archive, f"{folder}/checkpoint.sig", checkpoint.sshsig)
        kit.put(archive, f"{folder}/witness.sig", cosignature.signature)
        key_line = cosignature.key.public_key
        if (principal, key_line) not in seen_keys:
            seen_keys.add((principal, key_line))
            signer_lines.append(f"# {principal}: {cosignature.notary.email}")
            signer_lines.append(f'{principal} namespaces="{witness_namespace}" {key_line}')
        kit.witnessed.append(
            {
                "folder": folder,
                "principal": principal,
                "size": checkpoint.size,
                "root": checkpoint.root,
                "signed_at": cosignature.signed_at.isoformat(),
            }
        )
        sizes.add(checkpoint.size)
    kit.put(archive, "witnesses_allowed_signers", "\n".join(signer_lines) + "\n")
    ordered = sorted(sizes)
    for old, new in pairwise(ordered):
        name = f"log/consistency/{old}-{new}.json"
        proof = {"old_size": old, "new_size": new, "proof": consistency_proof_between(old, new)}
        kit.put(archive, name, json.dumps(proof, indent=2) + "\n")
        kit.consistency.append({"old_size": old, "new_size": new, "file": name})


def _kit_index(kit: _Kit, latest: Checkpoint | None) -> str:
    index = {
        "format": KIT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "origin": log_origin(),
        "principal": sshsig.PRINCIPAL,
        "namespaces": {kind: sshsig.namespace(kind) for kind in KIT_NAMESPACES},
        "checkpoint": None if latest is None else {"size": latest.size, "root": latest.root},
        "witnessed": kit.witnessed,
        "consistency": kit.consistency,
        "deposits": kit.deposits,
    }
    return json.dumps(index, indent=2) + "\n"


def safe_export_chunks(*, actor: Any) -> Iterator[bytes]:
    """Yield the ZIP of the safe, a self-contained proof kit, piece by piece."""
    actor_user: User = actor
    deposits = list(
        Deposit.objects.filter(state=DepositState.ACKNOWLEDGED)
        .select_related("product")
        .order_by("product__slug", "created_at")
    )
    audit_record(action="notary.safe_export", actor=actor_user, details={"deposits": len(deposits)})
    key = system_signing_key()
    allowed_signers = sshsig.allowed_signers_line(key.public_key()) + "\n"
    latest = checkpoint_latest()
    site = all_sites()[0]
    pipe = _Pipe()
    kit = _Kit()
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
                    kit.sums.append(f"{copy.sha256}  {folder}/{name}")
                yield pipe.take()
            # The stored manifest is signed only if it is the one the deposit recorded
            # (the database keeps a summary without the member list): an altered copy
            # gets no signature, and the verifier says so.
            with site.open(deposit.object_key("manifest")) as source:
                manifest = source.read()
            if hashlib.sha256(manifest).hexdigest() == deposit.manifest_sha256:
                signature = sshsig.sign(manifest, key, sshsig.namespace("manifest"))
                kit.put(archive, f"{folder}/manifest.json.sig", signature)
            kit.put(archive, f"{folder}/allowed_signers", allowed_signers)
            proof = (
                inclusion_proof_for(deposit.pk, checkpoint=latest) if latest is not None else None
            )
            if proof is not None:
                kit.put(
                    archive,
                    f"{folder}/inclusion.json",
                    json.dumps(proof.as_dict(), indent=2) + "\n",
                )
            kit.deposits.append(
                {
                    "folder": folder,
                    "deposit_id": deposit.pk,
                    "product": deposit.product.name,
                    "version": deposit.version,
                    "manifest_sha256": deposit.manifest_sha256,
                    "archive_sha256": deposit.archive_sha256,
                    "ciphertext_sha256": deposit.ciphertext_sha256,
                    "log_index": proof.index if proof is not None else None,
                }
            )
            yield pipe.take()
        kit.put(archive, "allowed_signers", allowed_signers)
        _write_log(archive, kit, latest)
        kit.put(archive, "escrow_verify.py", VERIFIER.read_bytes())
        kit.put(archive, "kit.json", _kit_index(kit, latest))
        kit.put(archive, "README.txt", _readme(kit, entries, latest))
        archive.writestr("SHA256SUMS", "\n".join(kit.sums) + "\n")
    yield pipe.take()
