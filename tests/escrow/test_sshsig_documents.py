"""Certificates, release letters and their downloads carry SSHSIG signatures that the
real OpenSSH ``ssh-keygen`` verifies over the real manifest bytes, and the system key
is published as an allowed_signers line anyone can fetch."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client
from pypdf import PdfReader

from escrow import certificates
from escrow.certificates import (
    ManifestUnavailable,
    allowed_signers_url,
    certificate_payload,
    certificate_pdf_render,
    certificate_sshsig,
    has_stored_manifest,
    manifest_sshsig,
    pdf_attachments,
    signature_context,
    verification_kit,
    verify_command,
)
from escrow.links import release_link
from escrow.models import ClaimRelease, Deposit
from escrow.services.deposits import deposit_acknowledge
from escrow.services.release_keys import release_key_set
from escrow.services.releases import release_approve, release_letter_render
from records.services.files import stored_file_open
from tests.conftest import signed_in_client
from tests.deposits import deposit_through_pipeline
from tests.escrow.test_release_journey import _claim_under_review, keygen
from tests.escrow.test_words_release_letter import overflowing_text
from tests.factories import make_active_subscription, make_deposit
from vault import merkle, sshsig
from vault.keys import system_signing_key
from vault.manifest import canonical_json
from vault.site_clients import all_sites

ARMOR = re.compile(r"-----BEGIN SSH SIGNATURE-----(.*?)-----END SSH SIGNATURE-----", re.S)


@pytest.fixture(scope="module", autouse=True)
def _ssh_keygen() -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.fail("`ssh-keygen` is required (install the Debian package openssh-client)")


@pytest.fixture
def deposit(product, staff, notary_identity) -> Deposit:
    return deposit_through_pipeline(product=product, staff=staff, version="2.4.0")


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def squeezed(text: str) -> str:
    return "".join(text.split())


def signatures_in(text: str) -> list[str]:
    """The armored signatures as printed in a PDF, put back into OpenSSH's armor."""
    found = []
    for body in ARMOR.findall(text):
        encoded = squeezed(body)
        lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
        found.append("\n".join([sshsig.BEGIN, *lines, sshsig.END]) + "\n")
    return found


def attachments_of(data: bytes) -> dict[str, bytes]:
    """The files embedded in a PDF as file attachment annotations, by name."""
    found = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        for reference in page.get("/Annots", []):
            annotation = reference.get_object()
            if annotation.get("/Subtype") == "/FileAttachment":
                spec = annotation["/FS"].get_object()
                found[str(spec["/UF"])] = spec["/EF"]["/F"].get_object().get_data()
    return found


def run_verify_txt(folder: Path) -> list[str]:
    """Run every ssh-keygen command VERIFY.txt gives, in ``folder``; all must pass."""
    commands = [
        line
        for line in (folder / "VERIFY.txt").read_text().splitlines()
        if line.startswith("ssh-keygen ")
    ]
    for command in commands:
        result = subprocess.run(
            command, shell=True, cwd=folder, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (command, result.stderr)
    return commands


def ssh_keygen_verify(folder: Path, *, kind: str, file: str) -> subprocess.CompletedProcess[str]:
    """Run the exact command the documents print, in ``folder``, with a shell."""
    return subprocess.run(
        verify_command(kind=kind, file=file),
        shell=True,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_files(folder: Path, files: dict[str, bytes | str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


def manifest_bytes(*, deposit: Deposit) -> bytes:
    """The manifest as stored beside the sealed file (every member, unlike the summary
    in the database)."""
    with all_sites()[0].open(deposit.object_key("manifest")) as stream:
        return stream.read()


def allowed_signers_file() -> str:
    return sshsig.allowed_signers_line(system_signing_key().public_key()) + "\n"


# --- the published key --------------------------------------------------------------


def test_anyone_gets_the_allowed_signers_line_and_ssh_keygen_uses_it(
    db, tmp_path, settings
) -> None:
    settings.ESCROW_PUBLIC_URL = "https://escrow.example.org"
    response = Client().get("/api/v1/keys/allowed_signers")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    line = response.content.decode()
    assert line == allowed_signers_file()
    assert line.startswith('escrow namespaces="escrow-manifest@escrow.localhost,')
    assert allowed_signers_url() == "https://escrow.example.org/api/v1/keys/allowed_signers"

    message = b"checked with the published key"
    folder = write_files(
        tmp_path,
        {
            "allowed_signers": response.content,
            "note.txt": message,
            "note.txt.sig": sshsig.sign(message, system_signing_key(), sshsig.namespace("receipt")),
        },
    )
    assert ssh_keygen_verify(folder, kind="receipt", file="note.txt").returncode == 0
    other_key = Ed25519PrivateKey.generate().public_key()
    (folder / "allowed_signers").write_text(sshsig.allowed_signers_line(other_key) + "\n")
    assert ssh_keygen_verify(folder, kind="receipt", file="note.txt").returncode != 0


def test_the_allowed_signers_url_only_answers_get(db) -> None:
    assert Client().post("/api/v1/keys/allowed_signers").status_code == 405


# --- the certificate ----------------------------------------------------------------


def test_the_certificate_payload_states_what_is_certified(deposit, notary) -> None:
    payload = json.loads(certificate_payload(deposit=deposit))
    assert payload["schema"] == "escrow-certificate/1"
    assert payload["issuer"] == "escrow.localhost"
    assert (payload["deposit"], payload["product"], payload["version"]) == (
        deposit.pk,
        "ledger-pro",
        "2.4.0",
    )
    assert payload["state"] == deposit.state
    assert payload["manifest_sha256"] == deposit.manifest_sha256
    assert payload["archive"]["sha256"] == deposit.archive_sha256
    assert payload["sealed_file"]["sha256"] == deposit.ciphertext_sha256
    assert payload["acknowledgement"] is None
    # Canonical and signed on demand: the same bytes and signature every time.
    assert certificate_payload(deposit=deposit) == canonical_json(payload)
    assert certificate_sshsig(deposit=deposit) == certificate_sshsig(deposit=deposit)

    acknowledged = deposit_acknowledge(deposit=deposit, notary=notary)
    later = json.loads(certificate_payload(deposit=acknowledged))
    assert later["state"] == "acknowledged"
    assert later["acknowledgement"]["receipt_signature"] == acknowledged.acknowledgement.signature


def test_the_certificate_prints_signatures_ssh_keygen_verifies(deposit, notary, tmp_path) -> None:
    deposit = deposit_acknowledge(deposit=deposit, notary=notary)
    text = pdf_text(certificate_pdf_render(deposit=deposit))
    flat = squeezed(text)
    assert squeezed(allowed_signers_file()) in flat
    assert squeezed(verify_command(kind="manifest", file="manifest.json")) in flat
    assert squeezed(verify_command(kind="certificate", file="certificate.json")) in flat
    assert deposit.manifest_sha256 in flat

    printed = signatures_in(text)
    assert printed[:2] == [manifest_sshsig(deposit=deposit), certificate_sshsig(deposit=deposit)]
    manifest = manifest_bytes(deposit=deposit)
    assert hashlib.sha256(manifest).hexdigest() == deposit.manifest_sha256
    folder = write_files(
        tmp_path / "ok",
        {
            "allowed_signers": allowed_signers_file(),
            "manifest.json": manifest,
            "manifest.json.sig": printed[0],
            "certificate.json": certificate_payload(deposit=deposit),
            "certificate.json.sig": printed[1],
        },
    )
    for kind, file in (("manifest", "manifest.json"), ("certificate", "certificate.json")):
        result = ssh_keygen_verify(folder, kind=kind, file=file)
        assert result.returncode == 0, result.stderr
        assert "Good" in result.stdout

    # Tampered bytes, swapped signatures (the other namespace) and other keys all fail.
    (folder / "manifest.json").write_bytes(manifest.replace(b"2.4.0", b"2.4.1"))
    assert ssh_keygen_verify(folder, kind="manifest", file="manifest.json").returncode != 0
    (folder / "manifest.json").write_bytes(manifest)
    (folder / "manifest.json.sig").write_text(printed[1])
    assert ssh_keygen_verify(folder, kind="manifest", file="manifest.json").returncode != 0


def test_the_certificate_carries_the_inclusion_proof(deposit) -> None:
    proof = signature_context(deposit=deposit)["inclusion_proof"]
    assert proof is not None, "a sealed deposit is in the log"
    assert merkle.verify_inclusion(
        bytes.fromhex(proof.leaf_hash),
        proof.index,
        proof.tree_size,
        [bytes.fromhex(node) for node in proof.proof],
        bytes.fromhex(proof.root),
    )
    flat = squeezed(pdf_text(certificate_pdf_render(deposit=deposit)))
    assert proof.root in flat
    assert squeezed(proof.checkpoint.split("\n\n")[0]) in flat
    assert "notyetinthelog" not in flat


def test_a_deposit_not_in_the_log_says_so(product) -> None:
    deposit = make_deposit(product=product)
    assert signature_context(deposit=deposit)["inclusion_proof"] is None
    assert "not yet in the log" in " ".join(
        pdf_text(certificate_pdf_render(deposit=deposit)).split()
    )


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def verified_kit(data: bytes, folder: Path) -> tuple[Path, list[str]]:
    """Unzip a kit and run every ssh-keygen command its VERIFY.txt gives."""
    with zipfile.ZipFile(io.BytesIO(data)) as kit:
        kit.extractall(folder)
    return folder, run_verify_txt(folder)


def test_the_certificate_pdf_carries_the_files_as_attachments(deposit, tmp_path) -> None:
    attached = attachments_of(certificate_pdf_render(deposit=deposit))
    assert list(attached) == [
        "manifest.json",
        "allowed_signers",
        "manifest.json.sig",
        "certificate.json",
        "certificate.json.sig",
        "inclusion.json",
        "checkpoint",
        "checkpoint.sig",
        "VERIFY.txt",
    ]
    assert attached["manifest.json"] == manifest_bytes(deposit=deposit)
    folder = write_files(tmp_path / "attached", dict(attached))
    assert len(run_verify_txt(folder)) == 3
    with (folder / "checkpoint").open("a") as checkpoint:
        checkpoint.write("a line added\n")
    assert ssh_keygen_verify(folder, kind="checkpoint", file="checkpoint").returncode != 0


def test_a_manifest_too_large_to_attach_is_left_to_the_kit(deposit, monkeypatch) -> None:
    names = [file["name"] for file in pdf_attachments(deposit=deposit, certificate=False)]
    assert names[0] == "manifest.json" and "certificate.json" not in names
    monkeypatch.setattr(certificates, "ATTACH_LIMIT", len(manifest_bytes(deposit=deposit)) - 1)
    names = [file["name"] for file in pdf_attachments(deposit=deposit, certificate=False)]
    assert "manifest.json" not in names and "manifest.json.sig" in names
    data = certificate_pdf_render(deposit=deposit)
    assert "manifest.json" not in attachments_of(data)
    assert "too large to attach" in " ".join(pdf_text(data).split())


def test_the_certificate_link_also_gives_the_verification_kit(deposit, staff, tmp_path) -> None:
    link = signed_in_client(staff).get(f"/deposits/{deposit.pk}/certificate/")["Location"]
    response = Client().get(link + "?part=kit")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "ledger-pro-2.4.0-signatures.zip" in response["Content-Disposition"]
    kit = body(response)
    folder, commands = verified_kit(kit, tmp_path / "kit")
    assert len(commands) == 3  # manifest, certificate, checkpoint
    assert (folder / "manifest.json").read_bytes() == manifest_bytes(deposit=deposit)
    proof = json.loads((folder / "inclusion.json").read_text())
    assert proof["leaf_hash"] == merkle.leaf_hash(bytes.fromhex(deposit.manifest_sha256)).hex()
    # The same kit every time (fixed zip dates, deterministic signatures).
    assert body(Client().get(link + "?part=kit")) == kit

    (folder / "certificate.json").write_bytes(b"{}")
    assert ssh_keygen_verify(folder, kind="certificate", file="certificate.json").returncode != 0
    assert Client().get(link + "?part=../etc").status_code == 404
    assert Client().get(link).content.startswith(b"%PDF-")
    # The certificate door asks for the kit through a fresh link too.
    kit_link = signed_in_client(staff).get(f"/deposits/{deposit.pk}/certificate/?part=kit")
    assert kit_link["Location"].endswith("/?part=kit")
    assert body(Client().get(kit_link["Location"])) == kit


def test_a_deposit_without_a_stored_manifest_has_no_kit(product) -> None:
    deposit = make_deposit(product=product)
    assert not has_stored_manifest(deposit)
    with pytest.raises(ManifestUnavailable, match="no site gives back the manifest"):
        verification_kit(deposit=deposit, certificate=False)


def test_an_altered_stored_manifest_is_never_signed(deposit, settings, staff) -> None:
    """The signature covers the recorded manifest only: an altered copy in the primary
    is passed over for the intact one in the replica; with none intact, nothing is signed."""
    intact = manifest_bytes(deposit=deposit)
    expected = manifest_sshsig(deposit=deposit)
    key = deposit.object_key("manifest")
    paths = [Path(site["path"]) / key for site in settings.ESCROW_SITES]
    assert len(paths) == 2 and all(path.read_bytes() == intact for path in paths)
    paths[0].write_bytes(intact.replace(b"2.4.0", b"6.6.6"))
    assert manifest_sshsig(deposit=deposit) == expected
    paths[1].unlink()
    with pytest.raises(ManifestUnavailable, match="primary holds a manifest with SHA-256"):
        manifest_sshsig(deposit=deposit)
    link = signed_in_client(staff).get(f"/deposits/{deposit.pk}/certificate/")["Location"]
    assert Client().get(link + "?part=kit").status_code == 503


# --- the release --------------------------------------------------------------------


@pytest.fixture
def release(product, licence, subscriber, staff, notary, notary_identity, tmp_path) -> ClaimRelease:
    make_active_subscription(licence=licence, actor=subscriber, staff=staff)
    deposit = deposit_through_pipeline(product=product, staff=staff)
    deposit_acknowledge(deposit=deposit, notary=notary)
    _, recipient = keygen(tmp_path)
    release_key_set(actor=subscriber, method="recipient", recipient=recipient)
    claim = _claim_under_review(deposit, subscriber)
    return release_approve(
        claim=claim, notary=notary, reasons="Proven.", identities=[notary_identity]
    )


def test_the_release_letter_prints_a_manifest_signature_ssh_keygen_verifies(
    release, tmp_path
) -> None:
    deposit = release.deposit
    with stored_file_open(release_letter_render(release=release)) as stream:
        text = pdf_text(stream.read())
    flat = squeezed(text)
    assert squeezed(allowed_signers_file()) in flat
    assert squeezed(verify_command(kind="manifest", file="manifest.json")) in flat
    assert deposit.manifest_sha256 in flat
    proof = signature_context(deposit=deposit)["inclusion_proof"]
    assert proof is not None and proof.root in flat

    printed = signatures_in(text)
    assert printed[0] == manifest_sshsig(deposit=deposit)
    folder = write_files(
        tmp_path / "letter",
        {
            "allowed_signers": allowed_signers_file(),
            "manifest.json": manifest_bytes(deposit=deposit),
            "manifest.json.sig": printed[0],
        },
    )
    assert ssh_keygen_verify(folder, kind="manifest", file="manifest.json").returncode == 0
    (folder / "manifest.json").write_bytes(manifest_bytes(deposit=deposit) + b" ")
    assert ssh_keygen_verify(folder, kind="manifest", file="manifest.json").returncode != 0

    # The letter carries the files themselves, as PDF attachments.
    with stored_file_open(release_letter_render(release=release)) as stream:
        attached = attachments_of(stream.read())
    assert "certificate.json" not in attached
    assert attached["manifest.json"] == manifest_bytes(deposit=deposit)
    assert len(run_verify_txt(write_files(tmp_path / "attached", dict(attached)))) == 2


def test_every_line_of_the_signed_release_letter_stays_inside_the_page(release) -> None:
    deposit = release.deposit
    context: dict[str, Any] = {
        "release": release,
        "claim": release.claim,
        "deposit": deposit,
        "manifest": deposit.manifest,
        "completeness": deposit.manifest.get("completeness", {}),
        **signature_context(deposit=deposit),
    }
    assert overflowing_text("certificates/release_letter.html", context) == []


def test_the_release_link_also_gives_the_manifest_and_its_signature(
    release, subscriber, tmp_path
) -> None:
    link = release_link(release=release, user=subscriber)
    response = Client().get(link + "?part=kit")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    folder, commands = verified_kit(body(response), tmp_path / "kit")
    assert len(commands) == 2  # manifest, checkpoint: no certificate in a release
    assert not (folder / "certificate.json").exists()
    manifest = (folder / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == release.deposit.manifest_sha256
    (folder / "manifest.json.sig").write_text(
        sshsig.sign(manifest, system_signing_key(), sshsig.namespace("certificate"))
    )
    assert ssh_keygen_verify(folder, kind="manifest", file="manifest.json").returncode != 0
    assert Client().get(link + "?part=letter").status_code == 404
