"""A notary's witness key made, and the latest checkpoint co-signed, with the real
ssh-keygen: for tests that acknowledge a deposit through the notary portal."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from accounts.models import User
from transparency.services import checkpoint_latest, witness_key_active, witness_key_add
from vault.sshsig import namespace


def ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    assert found, "ssh-keygen (Debian openssh-client) is needed to co-sign as a witness"
    return found


def witness_key_file(notary: User, folder: Path | None = None) -> Path:
    """The notary's witness private key file, made with ``ssh-keygen -t ed25519`` and
    its public half registered, unless the notary already has one made here. Without
    ``folder`` the key is kept for this test process, so a notary keeps one key."""
    folder = folder or Path(tempfile.gettempdir()) / f"escrow-witness-tests-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    path = folder / f"witness-{notary.pk}"
    if not path.exists():
        subprocess.run(
            [ssh_keygen(), "-q", "-t", "ed25519", "-N", "", "-C", "witness", "-f", str(path)],
            check=True,
        )
    line = path.with_suffix(".pub").read_text()
    active = witness_key_active(notary)
    if active is None or active.public_key != " ".join(line.split()[:2]):
        witness_key_add(notary=notary, public_key_line=line)
    return path


def cosign_form(notary: User, folder: Path | None = None) -> dict[str, str]:
    """The acknowledge form's fields: the latest checkpoint, signed as the portal says."""
    key = witness_key_file(notary, folder)
    checkpoint = checkpoint_latest()
    assert checkpoint is not None, "nothing sealed yet: no checkpoint to co-sign"
    target = key.parent / f"checkpoint-{checkpoint.size}.txt"
    target.write_text(checkpoint.body)
    subprocess.run(
        [ssh_keygen(), "-Y", "sign", "-f", str(key), "-n", namespace("witness"), str(target)],
        check=True,
        capture_output=True,
    )
    signature = target.with_name(target.name + ".sig")
    text = signature.read_text()
    signature.unlink()
    return {"checkpoint_size": str(checkpoint.size), "witness_signature": text}
