"""The demo's notary is a witness: its key made with the real ssh-keygen on disk, its
acknowledgements co-signed, and the command says where the key is."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.core.management import call_command

from escrow.models import DepositAcknowledgement
from transparency.models import LogLeaf
from transparency.services import witness_signatures
from vault import sshsig


@pytest.mark.django_db
def test_the_demo_notary_cosigns_with_a_key_on_disk(tmp_path, settings) -> None:
    settings.DEBUG = True  # `manage.py demo` runs only in development
    out = io.StringIO()
    call_command("demo", password="demo-password-1", identity_file=tmp_path / "n.txt", stdout=out)
    key = tmp_path / "notary-witness-key"
    assert "Notary witness key (SSH, private, never in the database" in out.getvalue()
    assert str(key) in out.getvalue()
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert LogLeaf.objects.count() >= 4  # every demo deposit was sealed into the log
    acknowledged = DepositAcknowledgement.objects.count()
    assert acknowledged == 2
    cosigned = list(witness_signatures())
    assert cosigned and all(
        ack.receipt.get("witness") for ack in DepositAcknowledgement.objects.all()
    )
    for signature in cosigned:
        (tmp_path / "allowed").write_text(f"notary {signature.public_key}\n")
        (tmp_path / "checkpoint.sig").write_text(signature.signature)
        subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(tmp_path / "allowed"),
                "-I",
                "notary",
                "-n",
                sshsig.namespace("witness"),
                "-s",
                str(tmp_path / "checkpoint.sig"),
            ],
            input=signature.checkpoint.encode(),
            check=True,
            capture_output=True,
        )
    assert key.with_suffix(".pub").read_text().split()[1] == cosigned[0].public_key.split()[1]
