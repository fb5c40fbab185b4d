"""The notary as a witness: its own SSH key (made and used with the real ssh-keygen),
the portal's instructions followed literally, and every wrong signature refused."""

from __future__ import annotations

import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Role
from escrow.models import Deposit, DepositAcknowledgement
from escrow.services.deposits import (
    deposit_acknowledge,
    deposit_replicate,
    deposit_seal,
    deposit_store,
    deposit_verify,
    receipt_sshsig,
)
from records.models import AuditEntry
from tests.conftest import signed_in_client
from tests.factories import UserFactory, make_deposit
from transparency.models import WitnessKey, WitnessSignature
from transparency.services import (
    checkpoint_latest,
    witness_cosign,
    witness_key_active,
    witness_key_add,
    witness_signatures,
)
from vault import merkle, sshsig
from vault.keys import system_signing_key
from vault.manifest import canonical_json

pytestmark = pytest.mark.django_db

SSH_KEYGEN = shutil.which("ssh-keygen")
if SSH_KEYGEN is None:  # pragma: no cover - the Debian package is part of the set-up
    pytest.skip("ssh-keygen (openssh-client) is not installed", allow_module_level=True)


def ssh_key(folder: Path, name: str = "escrow_witness") -> Path:
    path = folder / name
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "witness", "-f", str(path)],
        check=True,
    )
    return path


def ssh_sign(key: Path, message: bytes, namespace: str, folder: Path) -> str:
    target = folder / "message.txt"
    target.write_bytes(message)
    subprocess.run(
        [SSH_KEYGEN, "-Y", "sign", "-f", str(key), "-n", namespace, str(target)],
        check=True,
        capture_output=True,
    )
    signature = (folder / "message.txt.sig").read_text()
    (folder / "message.txt.sig").unlink()
    return signature


def ssh_verify(line: str, message: bytes, signature: str, namespace: str, folder: Path) -> None:
    (folder / "allowed_signers").write_text(line + "\n")
    (folder / "check.sig").write_text(signature)
    subprocess.run(
        [
            SSH_KEYGEN,
            "-Y",
            "verify",
            "-f",
            str(folder / "allowed_signers"),
            "-I",
            "escrow",
            "-n",
            namespace,
            "-s",
            str(folder / "check.sig"),
        ],
        input=message,
        check=True,
        capture_output=True,
    )


def replicated(product, version: str = "1.0.0") -> Deposit:
    deposit = make_deposit(product=product, version=version)
    deposit_verify(deposit=deposit, manifest={}, manifest_sha256="a" * 64, signature="s")
    deposit_seal(deposit=deposit, ciphertext_sha256="b" * 64, ciphertext_size=1, sealed_for=[])
    deposit_store(deposit=deposit)
    return deposit_replicate(deposit=deposit)


@pytest.fixture
def witness(notary, tmp_path) -> Path:
    """The notary's witness key pair in a folder of its own; the public half registered."""
    key = ssh_key(tmp_path)
    witness_key_add(notary=notary, public_key_line=key.with_suffix(".pub").read_text())
    return key


def test_the_key_is_registered_with_the_fingerprint_ssh_keygen_shows(notary, tmp_path) -> None:
    key = ssh_key(tmp_path)
    line = key.with_suffix(".pub").read_text()
    registered = witness_key_add(notary=notary, public_key_line=line)
    shown = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(key.with_suffix(".pub"))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert registered.fingerprint == shown
    assert registered.public_key == " ".join(line.split()[:2])  # the comment is dropped
    assert witness_key_add(notary=notary, public_key_line=line) == registered  # idempotent
    assert AuditEntry.objects.filter(action="witness_key.add").count() == 1


def test_a_new_key_retires_the_old_one(notary, tmp_path) -> None:
    first = witness_key_add(
        notary=notary, public_key_line=ssh_key(tmp_path, "a").with_suffix(".pub").read_text()
    )
    second = witness_key_add(
        notary=notary, public_key_line=ssh_key(tmp_path, "b").with_suffix(".pub").read_text()
    )
    first.refresh_from_db()
    assert first.retired_at is not None and witness_key_active(notary) == second


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected one OpenSSH public key line"),
        ("ssh-ed25519 AAAA\nssh-ed25519 BBBB", "expected one OpenSSH public key line"),
        ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ", "not an ssh-ed25519 public key"),
        ("ssh-ed25519 not-base64!", "unreadable OpenSSH public key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "not an ssh-ed25519 public key"),
        ("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", "not an ssh-ed25519"),
    ],
)
def test_anything_but_an_ed25519_public_key_is_refused(notary, text, problem) -> None:
    with pytest.raises(ValidationError, match="Not a usable witness key: " + re.escape(problem)):
        witness_key_add(notary=notary, public_key_line=text)
    assert not WitnessKey.objects.exists()


def test_a_key_cannot_witness_for_two_notaries(notary, witness) -> None:
    other = UserFactory(email="second@notaris.example", role=Role.NOTARY, organisation=None)
    with pytest.raises(ValidationError, match="registered for another notary"):
        witness_key_add(notary=other, public_key_line=witness.with_suffix(".pub").read_text())


def test_only_a_notary_holds_a_witness_key(staff, tmp_path) -> None:
    with pytest.raises(ValidationError, match="Only a notary"):
        witness_key_add(
            notary=staff, public_key_line=ssh_key(tmp_path).with_suffix(".pub").read_text()
        )


def test_the_notary_follows_the_portal_literally_and_the_receipt_carries_it_all(
    notary, product, witness, tmp_path, client_for
) -> None:
    deposit = replicated(product)
    client = client_for(notary)
    page = unescape(client.get(f"/notary/deposits/{deposit.pk}/").content.decode())
    checkpoint = checkpoint_latest()
    assert checkpoint is not None and checkpoint.body in page
    commands = re.findall(r"<pre><code>((?:printf|ssh-keygen -Y sign)[^<]*)</code></pre>", page)
    assert len(commands) == 2, page
    work = tmp_path / "desk"
    work.mkdir()
    for command in commands:
        # The page names ~/.ssh/escrow_witness; this notary keeps it in the test folder.
        command = command.replace("~/.ssh/escrow_witness", str(witness))
        subprocess.run(["sh", "-c", command], cwd=work, check=True, capture_output=True)
    saved = work / f"checkpoint-{checkpoint.size}.txt"
    assert saved.read_text() == checkpoint.body
    signature = (work / f"checkpoint-{checkpoint.size}.txt.sig").read_text()

    response = client.post(
        f"/notary/deposits/{deposit.pk}/acknowledge/",
        {"checkpoint_size": checkpoint.size, "witness_signature": signature.replace("\n", "\r\n")},
        follow=True,
    )
    assert f"co-signed checkpoint {checkpoint.size} of the log" in response.content.decode()
    deposit.refresh_from_db()
    assert deposit.state == "acknowledged"

    cosigned = witness_signatures().get()
    assert cosigned.checkpoint == checkpoint.body and cosigned.notary == notary
    ssh_verify(
        f"escrow {cosigned.public_key}",
        cosigned.checkpoint.encode(),
        cosigned.signature,
        sshsig.namespace("witness"),
        tmp_path,
    )
    receipt = DepositAcknowledgement.objects.get(deposit=deposit).receipt
    assert receipt["witness"]["signature"] == cosigned.signature
    inclusion = receipt["log_inclusion"]
    assert inclusion["tree_size"] == checkpoint.size and inclusion["checkpoint"] == checkpoint.note
    assert merkle.verify_inclusion(
        merkle.leaf_hash(bytes.fromhex(deposit.manifest_sha256)),
        inclusion["index"],
        inclusion["tree_size"],
        [bytes.fromhex(node) for node in inclusion["proof"]],
        bytes.fromhex(checkpoint.root),
    )
    # The deposit page now gives the commands that save the receipt, its SSHSIG and the
    # system's allowed_signers line and verify it: run literally, ssh-keygen says Good.
    page = unescape(client.get(f"/notary/deposits/{deposit.pk}/").content.decode())
    details = page[page.index('<details class="receipt">') : page.index("</details>")]
    receipt_commands = re.findall(r"<pre><code>(.*?)</code></pre>", details, re.S)
    assert len(receipt_commands) == 4 and receipt_commands[-1].startswith("ssh-keygen -Y verify")
    kept = tmp_path / "kept"
    kept.mkdir()
    for command in receipt_commands:
        done = subprocess.run(["sh", "-c", command], cwd=kept, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert 'Good "escrow-receipt@' in done.stdout + done.stderr
    tampered = (kept / "receipt.json").read_text().replace('"deposit":', '"deposit":1')
    (kept / "receipt.json").write_text(tampered)
    assert subprocess.run(["sh", "-c", receipt_commands[-1]], cwd=kept).returncode != 0
    # The receipt's SSHSIG checks with OpenSSH and the system's allowed_signers line.
    ssh_verify(
        sshsig.allowed_signers_line(system_signing_key().public_key()),
        canonical_json(receipt),
        receipt_sshsig(receipt),
        sshsig.namespace("receipt"),
        tmp_path,
    )


@pytest.mark.parametrize("wrong", ["other key", "other namespace", "tampered checkpoint"])
def test_a_wrong_witness_signature_is_refused_and_nothing_changes(
    notary, product, witness, tmp_path, client_for, wrong
) -> None:
    deposit = replicated(product)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    body, key, namespace = checkpoint.body.encode(), witness, sshsig.namespace("witness")
    if wrong == "other key":
        key = ssh_key(tmp_path, "stranger")
    elif wrong == "other namespace":
        namespace = sshsig.namespace("checkpoint")
    else:
        body = body.replace(f"\n{checkpoint.size}\n".encode(), b"\n99\n")
    signature = ssh_sign(key, body, namespace, tmp_path)
    response = signed_in_client(notary).post(
        f"/notary/deposits/{deposit.pk}/acknowledge/",
        {"checkpoint_size": checkpoint.size, "witness_signature": signature},
        follow=True,
    )
    reason = {
        "other key": "signature was made by another key",
        "other namespace": "signature is for namespace",
        "tampered checkpoint": "signature does not match the message",
    }[wrong]
    page = unescape(response.content.decode())
    assert "The witness signature does not verify for checkpoint" in page and reason in page
    deposit.refresh_from_db()
    assert deposit.state == "replicated"
    assert not WitnessSignature.objects.exists()
    assert not DepositAcknowledgement.objects.exists()


def test_the_portal_refuses_a_notary_without_a_witness_key(notary, product, client_for) -> None:
    deposit = replicated(product)
    client = client_for(notary)
    page = client.get(f"/notary/deposits/{deposit.pk}/").content.decode()
    assert "Add your witness key</a> first" in page
    response = client.post(f"/notary/deposits/{deposit.pk}/acknowledge/", follow=True)
    assert "Add your witness key first" in response.content.decode()
    deposit.refresh_from_db()
    assert deposit.state == "replicated"


def test_an_empty_signature_is_refused_by_the_portal(notary, product, witness, client_for) -> None:
    deposit = replicated(product)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    response = client_for(notary).post(
        f"/notary/deposits/{deposit.pk}/acknowledge/",
        {"checkpoint_size": checkpoint.size, "witness_signature": ""},
        follow=True,
    )
    assert "Paste your signature of the checkpoint" in response.content.decode()
    deposit.refresh_from_db()
    assert deposit.state == "replicated"


def test_the_service_asks_a_notary_with_a_key_to_cosign(notary, product, witness) -> None:
    deposit = replicated(product)
    with pytest.raises(ValidationError, match="Co-sign checkpoint 1 of the log"):
        deposit_acknowledge(deposit=deposit, notary=notary)
    with pytest.raises(ValidationError, match="no checkpoint of 7 deposits"):
        deposit_acknowledge(
            deposit=deposit, notary=notary, witness_signature="x", checkpoint_size=7
        )
    deposit.refresh_from_db()
    assert deposit.state == "replicated"


def test_a_notary_without_a_key_acknowledges_through_the_service_unwitnessed(
    notary, product
) -> None:
    """The rule for callers other than the portal (docs/security.md): no key, no
    co-signature; the receipt still carries the inclusion proof."""
    deposit = replicated(product)
    deposit_acknowledge(deposit=deposit, notary=notary)
    receipt = DepositAcknowledgement.objects.get(deposit=deposit).receipt
    assert "witness" not in receipt and receipt["log_inclusion"]["tree_size"] == 1


def test_cosigning_the_same_checkpoint_twice_keeps_one_record(
    notary, product, witness, tmp_path
) -> None:
    replicated(product)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    signature = ssh_sign(witness, checkpoint.body.encode(), sshsig.namespace("witness"), tmp_path)
    first = witness_cosign(notary=notary, checkpoint=checkpoint, signature=signature)
    again = witness_cosign(notary=notary, checkpoint=checkpoint, signature=signature)
    assert first.pk == again.pk and WitnessSignature.objects.count() == 1
    assert AuditEntry.objects.filter(action="checkpoint.witness").count() == 1


def test_cosigning_needs_a_witness_key(notary, product) -> None:
    replicated(product)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    with pytest.raises(ValidationError, match="no witness key"):
        witness_cosign(notary=notary, checkpoint=checkpoint, signature="anything")


def test_the_witness_page_adds_and_replaces_the_key(notary, tmp_path, client_for) -> None:
    client = client_for(notary)
    assert "You have no witness key yet" in client.get("/notary/witness/").content.decode()
    line = ssh_key(tmp_path).with_suffix(".pub").read_text()
    response = client.post("/notary/witness/", {"public_key": line}, follow=True)
    key = witness_key_active(notary)
    assert key is not None and f"Your witness key is {key.fingerprint}" in response.content.decode()
    response = client.post("/notary/witness/", {"public_key": "ssh-rsa AAAA"})
    assert "not an ssh-ed25519 public key" in unescape(response.content.decode())
    assert witness_key_active(notary) == key


@pytest.mark.parametrize("size", ["", "-1", "abc", "0"])
def test_a_hostile_checkpoint_size_is_refused_by_the_portal(
    notary, product, witness, client_for, size
) -> None:
    deposit = replicated(product)
    response = client_for(notary).post(
        f"/notary/deposits/{deposit.pk}/acknowledge/",
        {"checkpoint_size": size, "witness_signature": "x"},
        follow=True,
    )
    assert "The checkpoint to co-sign is missing or not a size" in response.content.decode()
    deposit.refresh_from_db()
    assert deposit.state == "replicated"


def test_a_checkpoint_size_the_log_never_signed_is_refused(
    notary, product, witness, client_for
) -> None:
    deposit = replicated(product)
    response = client_for(notary).post(
        f"/notary/deposits/{deposit.pk}/acknowledge/",
        {"checkpoint_size": "40", "witness_signature": "x"},
        follow=True,
    )
    assert "The log has no checkpoint of 40 deposits." in response.content.decode()
    deposit.refresh_from_db()
    assert deposit.state == "replicated"


@pytest.mark.parametrize(
    "garbage",
    [
        "not a signature",
        "-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
    ],
)
def test_a_pasted_text_that_is_no_signature_is_refused(notary, product, witness, garbage) -> None:
    replicated(product)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None
    with pytest.raises(ValidationError, match="The witness signature does not verify"):
        witness_cosign(notary=notary, checkpoint=checkpoint, signature=garbage)
    assert not WitnessSignature.objects.exists()
