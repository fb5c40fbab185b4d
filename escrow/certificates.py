"""Deposit certificates (PDF) and the signatures anyone can check with OpenSSH.

Besides the raw Ed25519 manifest signature (``vault.manifest.sign_manifest``), the
system signs with SSHSIG (vault/sshsig.py), which ``ssh-keygen -Y verify`` checks
against the allowed_signers line published at /api/v1/keys/allowed_signers:

- ``manifest.json`` (the canonical manifest bytes) and ``manifest.json.sig``,
  namespace ``escrow-manifest@<domain>``;
- ``certificate.json`` (``certificate_payload``: what a certificate certifies) and
  ``certificate.json.sig``, namespace ``escrow-certificate@<domain>``.

Neither signature is stored: both cover bytes that never change for a deposit in a
given state, and Ed25519 is deterministic, so signing again gives the same signature
byte for byte. The payload therefore holds only what is fixed for that state (hashes,
sizes, times, the acknowledgement), not names that can be edited later or copies that
are verified again and again. ``verification_kit`` zips these files with the
allowed_signers line, the deposit's inclusion proof and the commands."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tempfile
import zipfile
from typing import IO, Any, BinaryIO, cast

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from escrow.models import Deposit, DepositCopy, DepositState
from escrow.selectors import products_covered_for
from records.links import configured_public_origin
from records.models import StoredFile
from records.pdf import pdf_render
from records.services.files import stored_file_open, stored_file_put
from transparency.services import InclusionProof, inclusion_proof_for
from vault import sshsig
from vault.keys import system_signing_key
from vault.manifest import canonical_json, public_key_text
from vault.site_clients import all_sites
from vault.sites import SiteError, StorageSiteClient

CERTIFIABLE_STATES = [DepositState.STORED, DepositState.REPLICATED, DepositState.ACKNOWLEDGED]
CERTIFICATE_SCHEMA = "escrow-certificate/1"
ALLOWED_SIGNERS = "allowed_signers"
# The kit's fixed date: its bytes depend on the deposit only, not on when it was zipped.
KIT_DATE = (1980, 1, 1, 0, 0, 0)
KIT_IN_MEMORY = 4 * 1024**2
# The largest manifest embedded in a PDF (as base64 in the HTML WeasyPrint lays out).
ATTACH_LIMIT = 4 * 1024**2
MANIFEST_CHUNK = 1024**2


def may_see_certificate(user: Any, deposit: Deposit) -> bool:
    """Staff, a notary who has passed the second factor, and customers whose active
    escrow subscription covers the deposit's product."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.role == Role.STAFF:
        return True
    if user.role == Role.NOTARY:
        return bool(user.is_verified())
    if user.role == Role.CUSTOMER:
        return products_covered_for(user.organisation).filter(pk=deposit.product_id).exists()
    return False


def certificate_pdf_render(*, deposit: Deposit) -> bytes:
    """The deposit certificate as a PDF."""
    context = {
        "deposit": deposit,
        "manifest": deposit.manifest,
        "completeness": deposit.manifest.get("completeness", {}),
        "copies": deposit.copies.order_by("site", "kind"),
        "acknowledgement": getattr(deposit, "acknowledgement", None),
        "system_key": public_key_text(system_signing_key()),
        "generated_at": timezone.now(),
        "certificate_sha256": _sha256(certificate_payload(deposit=deposit)),
        **signature_context(deposit=deposit, certificate=True),
    }
    return pdf_render(template="certificates/deposit.html", context=context)


class ManifestUnavailable(Exception):
    """No storage site gives back the deposit's manifest with its recorded SHA-256: it
    is never signed (nor handed out) as anything else."""


def has_stored_manifest(deposit: Deposit) -> bool:
    """Whether the deposit got as far as storing its signed manifest."""
    return deposit.copies.filter(kind=DepositCopy.Kind.MANIFEST).exists()


def manifest_sshsig(*, deposit: Deposit) -> str:
    """``manifest.json.sig``: the system key's SSHSIG of the deposit's stored
    ``manifest.json`` (the canonical manifest with every member, which the database
    keeps only in summary), read as a stream and checked against ``manifest_sha256``."""
    sha512, _ = _stored_manifest(deposit)
    return sshsig.sign_digest(sha512, system_signing_key(), sshsig.namespace("manifest"))


def _stored_manifest(deposit: Deposit) -> tuple[bytes, StorageSiteClient]:
    """The stored manifest's SHA-512 and the first site (in order) that holds it intact."""
    key = deposit.object_key(DepositCopy.Kind.MANIFEST)
    problems = []
    for site in all_sites():
        try:
            sha256, sha512 = _digests(site, key)
        except SiteError as error:
            problems.append(str(error))
            continue
        if sha256 == deposit.manifest_sha256:
            return sha512, site
        problems.append(f"{site.name} holds a manifest with SHA-256 {sha256}")
    raise ManifestUnavailable(
        f"no site gives back the manifest of deposit #{deposit.pk} with SHA-256 "
        f"{deposit.manifest_sha256}: " + "; ".join(problems)
    )


def _digests(site: StorageSiteClient, key: str, into: IO[bytes] | None = None) -> tuple[str, bytes]:
    sha256, sha512 = hashlib.sha256(), hashlib.sha512()
    with site.open(key) as stream:
        while chunk := stream.read(MANIFEST_CHUNK):
            sha256.update(chunk)
            sha512.update(chunk)
            if into is not None:
                into.write(chunk)
    return sha256.hexdigest(), sha512.digest()


def certificate_payload(*, deposit: Deposit) -> bytes:
    """``certificate.json``: canonical JSON of what the certificate of the deposit's
    current state certifies. The product's and vendor's names are in the manifest
    (bound by its hash); the copies are listed in the PDF, as verified when issued."""
    acknowledgement = getattr(deposit, "acknowledgement", None)
    payload: dict[str, Any] = {
        "schema": CERTIFICATE_SCHEMA,
        "issuer": settings.ESCROW_SIGNATURE_DOMAIN,
        "deposit": deposit.pk,
        "product": deposit.product.slug,
        "version": deposit.version,
        "state": str(deposit.state),
        "received_at": deposit.created_at.isoformat(),
        "archive": {"size": deposit.archive_size, "sha256": deposit.archive_sha256},
        "sealed_file": {
            "format": "age-v1",
            "size": deposit.ciphertext_size,
            "sha256": deposit.ciphertext_sha256,
            "recipients": sorted(deposit.sealed_for or []),
        },
        "manifest_sha256": deposit.manifest_sha256,
        "acknowledgement": None
        if acknowledgement is None
        else {
            "acknowledged_at": acknowledgement.acknowledged_at.isoformat(),
            "manifest_sha256": acknowledgement.manifest_sha256,
            "receipt_signature": acknowledgement.signature,
        },
    }
    return canonical_json(payload)


def certificate_sshsig(*, deposit: Deposit) -> str:
    """``certificate.json.sig``: the system key's SSHSIG of ``certificate_payload``."""
    return sshsig.sign(
        certificate_payload(deposit=deposit), system_signing_key(), sshsig.namespace("certificate")
    )


def allowed_signers_url() -> str:
    """Where the allowed_signers line is published; from ESCROW_PUBLIC_URL alone, as
    the documents that print it are kept and passed on."""
    return configured_public_origin() + reverse("api:allowed-signers")


def verify_command(*, kind: str, file: str) -> str:
    """The exact OpenSSH command that checks ``file`` against ``file``.sig."""
    return (
        f"ssh-keygen -Y verify -f {ALLOWED_SIGNERS} -I {sshsig.PRINCIPAL} "
        f"-n {sshsig.namespace(kind)} -s {file}.sig < {file}"
    )


def signature_context(*, deposit: Deposit, certificate: bool = False) -> dict[str, Any]:
    """What the certificate (``certificate``) and the release letter print for checking
    by hand: the signatures, the allowed_signers line, the commands and the inclusion
    proof (None: the deposit is not in a signed checkpoint of the log yet); and the same
    files to embed in the PDF (``attachments``), when a signed manifest is stored."""
    stored = has_stored_manifest(deposit)
    return {
        "allowed_signers": sshsig.allowed_signers_line(system_signing_key().public_key()),
        "allowed_signers_url": allowed_signers_url(),
        "manifest_sshsig": manifest_sshsig(deposit=deposit) if stored else None,
        "manifest_command": verify_command(kind="manifest", file="manifest.json"),
        "certificate_sshsig": certificate_sshsig(deposit=deposit),
        "certificate_command": verify_command(kind="certificate", file="certificate.json"),
        "checkpoint_command": verify_command(kind="checkpoint", file="checkpoint"),
        "inclusion_proof": inclusion_proof_for(deposit.pk),
        "attachments": pdf_attachments(deposit=deposit, certificate=certificate) if stored else [],
    }


def pdf_attachments(*, deposit: Deposit, certificate: bool) -> list[dict[str, Any]]:
    """The verification kit's files as PDF attachments (``<a rel="attachment">``, read
    with any PDF viewer's attachment panel or ``pdfdetach -saveall``), so the document
    alone is enough to check its signatures. A manifest over ATTACH_LIMIT stays out (a
    large deposit's runs to tens of megabytes): the kit download has it."""
    sha512, site = _stored_manifest(deposit)
    files: dict[str, bytes] = {}
    key = deposit.object_key(DepositCopy.Kind.MANIFEST)
    found = site.stat(key)
    if found is not None and found.size <= ATTACH_LIMIT:
        buffer = io.BytesIO()
        sha256, _ = _digests(site, key, buffer)
        if sha256 != deposit.manifest_sha256:
            raise ManifestUnavailable(f"the manifest in {site.name} changed while read")
        files["manifest.json"] = buffer.getvalue()
    files |= _signed_files(deposit, certificate=certificate, manifest_sha512=sha512)
    return [
        {
            "name": name,
            "size": len(data),
            "href": "data:application/octet-stream;base64," + base64.b64encode(data).decode(),
        }
        for name, data in files.items()
    ]


def verification_kit(*, deposit: Deposit, certificate: bool) -> BinaryIO:
    """A zip of the files the commands name: allowed_signers, manifest.json and its
    signature, with ``certificate`` also certificate.json and its signature, and the
    inclusion proof with its checkpoint when the deposit is in the log; VERIFY.txt says
    how to check each one. A file positioned at its start (in memory while small): the
    manifest of a large deposit runs to tens of megabytes and is copied as a stream."""
    sha512, site = _stored_manifest(deposit)
    files = _signed_files(deposit, certificate=certificate, manifest_sha512=sha512)
    output = tempfile.SpooledTemporaryFile(max_size=KIT_IN_MEMORY)  # noqa: SIM115 (returned open)
    try:
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as kit:
            with kit.open(_entry("manifest.json"), "w") as entry:
                key = deposit.object_key(DepositCopy.Kind.MANIFEST)
                sha256, _ = _digests(site, key, entry)
            if sha256 != deposit.manifest_sha256:
                raise ManifestUnavailable(f"the manifest in {site.name} changed while read")
            for name, data in files.items():
                kit.writestr(_entry(name), data)
    except BaseException:
        output.close()
        raise
    output.seek(0)
    return cast(BinaryIO, output)


def _signed_files(
    deposit: Deposit, *, certificate: bool, manifest_sha512: bytes
) -> dict[str, bytes]:
    """Every file of the kit but manifest.json itself, VERIFY.txt last."""
    files: dict[str, bytes] = {
        ALLOWED_SIGNERS: (
            sshsig.allowed_signers_line(system_signing_key().public_key()) + "\n"
        ).encode(),
        "manifest.json.sig": sshsig.sign_digest(
            manifest_sha512, system_signing_key(), sshsig.namespace("manifest")
        ).encode(),
    }
    commands = [verify_command(kind="manifest", file="manifest.json")]
    if certificate:
        files["certificate.json"] = certificate_payload(deposit=deposit)
        files["certificate.json.sig"] = certificate_sshsig(deposit=deposit).encode()
        commands.append(verify_command(kind="certificate", file="certificate.json"))
    proof = inclusion_proof_for(deposit.pk)
    if proof is not None:
        files["inclusion.json"] = _proof_json(proof)
        files["checkpoint"] = _checkpoint_body(proof.checkpoint).encode()
        files["checkpoint.sig"] = proof.checkpoint_sshsig.encode()
        commands.append(verify_command(kind="checkpoint", file="checkpoint"))
    files["VERIFY.txt"] = _instructions(deposit, commands, in_log=proof is not None).encode()
    return files


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=KIT_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _instructions(deposit: Deposit, commands: list[str], *, in_log: bool) -> str:
    lines = [
        f"Signatures of {deposit.product.slug} {deposit.version} (deposit {deposit.pk}),",
        "made by the escrow service's key in allowed_signers (also published at",
        f"{allowed_signers_url()}). Check each with OpenSSH, in this folder:",
        "",
        *commands,
        "",
        f"manifest.json must have the SHA-256 {deposit.manifest_sha256}:",
        "sha256sum manifest.json",
    ]
    if in_log:
        lines += [
            "",
            "inclusion.json proves that SHA-256 is a leaf of the transparency log",
            "at the checkpoint in the file checkpoint (RFC 9162 inclusion proof).",
        ]
    else:
        lines += ["", "The deposit is not yet in a signed checkpoint of the transparency log."]
    return "\n".join(lines) + "\n"


def _proof_json(proof: InclusionProof) -> bytes:
    return (json.dumps(proof.as_dict(), indent=2, sort_keys=True) + "\n").encode()


def _checkpoint_body(note: str) -> str:
    """The checkpoint itself (what its SSHSIG covers): a signed note's text up to the
    blank line before its signature lines (C2SP signed-note)."""
    body, _, _ = note.partition("\n\n")
    return body + "\n"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def certificate_document_render(*, deposit: Deposit) -> bytes:
    """The certificate for the deposit's current state, rendered once per state and kept
    in the storage sites with every other document (a later state gets a new one)."""
    key = f"certificates/{deposit.product.slug}/{deposit.pk}/{deposit.state}.pdf"
    stored = StoredFile.objects.filter(key=key).first()
    if stored is None:
        stored = stored_file_put(
            key=key,
            source=certificate_pdf_render(deposit=deposit),
            purpose=StoredFile.Purpose.CERTIFICATE,
            content_type="application/pdf",
            filename=f"deposit-{deposit.product.slug}-{deposit.version}.pdf",
        )
    with stored_file_open(stored) as stream:
        return stream.read(stored.size + 1)
