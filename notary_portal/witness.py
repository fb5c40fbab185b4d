"""The notary as a witness of the transparency log: its own SSH key, and what the
deposit page shows to co-sign a checkpoint with it.

The notary signs on its own machine with ``ssh-keygen -Y sign``; the portal only ever
sees the public key and the signature (docs/security.md, "The transparency log and
its witnesses")."""

from __future__ import annotations

import shlex
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.access import notary_required
from accounts.models import User
from escrow.models import Deposit, DepositAcknowledgement
from escrow.services.deposits import deposit_acknowledge, receipt_sshsig
from records.services.transitions import TransitionRefused
from transparency.models import Checkpoint, WitnessKey
from transparency.services import checkpoint_latest, witness_key_active, witness_key_add
from vault.keys import system_signing_key
from vault.manifest import canonical_json
from vault.sshsig import allowed_signers_line, namespace

#: Where the page suggests the notary keeps its witness key (any path works).
KEY_PATH = "~/.ssh/escrow_witness"


class WitnessKeyForm(forms.Form):
    public_key = forms.CharField(
        label="Your SSH public key",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text=f"The one line of {KEY_PATH}.pub: ssh-ed25519 AAAA... (the comment is dropped).",
    )


class WitnessSignatureForm(forms.Form):
    """The acknowledgement form's co-signature: which checkpoint, and the pasted SSHSIG."""

    checkpoint_size = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    witness_signature = forms.CharField(
        label="Your signature of the checkpoint",
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false"}),
        help_text="The whole of checkpoint-N.txt.sig, from -----BEGIN SSH SIGNATURE----- "
        "to -----END SSH SIGNATURE-----.",
    )


def checkpoint_file_name(checkpoint: Checkpoint) -> str:
    return f"checkpoint-{checkpoint.size}.txt"


def save_command(checkpoint: Checkpoint) -> str:
    """A shell command that writes the checkpoint body byte for byte (one printf)."""
    lines = checkpoint.body.splitlines()
    quoted = " ".join(shlex.quote(line) for line in lines)
    return f"printf '%s\\n' {quoted} > {checkpoint_file_name(checkpoint)}"


def sign_command(checkpoint: Checkpoint) -> str:
    """The exact ``ssh-keygen -Y sign`` command; it writes ``checkpoint-N.txt.sig``."""
    return (
        f"ssh-keygen -Y sign -f {KEY_PATH} -n {namespace('witness')} "
        f"{checkpoint_file_name(checkpoint)}"
    )


def witness_context(notary: User) -> dict[str, Any]:
    """What the deposit page needs to ask for a co-signature: the notary's key, the
    checkpoint to sign (the log as it is now), the commands, and the empty form."""
    checkpoint = checkpoint_latest()
    context: dict[str, Any] = {
        "witness_key": witness_key_active(notary),
        "witness_checkpoint": checkpoint,
    }
    if checkpoint is not None:
        context |= {
            "witness_save_command": save_command(checkpoint),
            "witness_sign_command": sign_command(checkpoint),
            "witness_signature_file": checkpoint_file_name(checkpoint) + ".sig",
            "witness_form": WitnessSignatureForm(initial={"checkpoint_size": checkpoint.size}),
        }
    return context


@notary_required
def witness_key(request: HttpRequest) -> HttpResponse:
    """Add or replace the notary's witness key (an SSH Ed25519 public key)."""
    notary: Any = request.user
    form = WitnessKeyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            key = witness_key_add(notary=notary, public_key_line=form.cleaned_data["public_key"])
        except ValidationError as error:
            form.add_error("public_key", " ".join(error.messages))
        else:
            messages.success(request, f"Your witness key is {key.fingerprint}.")
            return redirect("notary:witness")
    context = {
        "form": form,
        "active": witness_key_active(notary),
        "retired": WitnessKey.objects.filter(notary=notary, retired_at__isnull=False),
        "key_path": KEY_PATH,
        "namespace": namespace("witness"),
        "domain": settings.ESCROW_SIGNATURE_DOMAIN,
    }
    return render(request, "notary/witness.html", context)


def acknowledge_with_witness(request: HttpRequest, deposit: Deposit) -> None:
    """The acknowledge button: the portal refuses a notary without a witness key, and
    otherwise passes the pasted co-signature of the shown checkpoint to the service,
    which checks it before anything is recorded. The outcome is told as a message."""
    notary: Any = request.user
    if witness_key_active(notary) is None:
        messages.error(
            request,
            "Add your witness key first (Witness key, in the menu): acknowledging a deposit "
            "includes co-signing the log with it.",
        )
        return
    signature, size = None, None
    if checkpoint_latest() is not None:
        form = WitnessSignatureForm(request.POST)
        if "checkpoint_size" in form.errors:
            messages.error(
                request,
                "The checkpoint to co-sign is missing or not a size: reload the deposit's "
                "page and sign the checkpoint it shows.",
            )
            return
        if not form.is_valid():
            messages.error(
                request,
                "Paste your signature of the checkpoint shown (the whole "
                "checkpoint-N.txt.sig file) to acknowledge.",
            )
            return
        signature = form.cleaned_data["witness_signature"]
        size = form.cleaned_data["checkpoint_size"]
    try:
        deposit_acknowledge(
            deposit=deposit, notary=notary, witness_signature=signature, checkpoint_size=size
        )
    except TransitionRefused as refused:
        messages.error(request, str(refused))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            f"You acknowledged {deposit.product.name} {deposit.version}"
            + (f" and co-signed checkpoint {size} of the log." if size else "."),
        )


def receipt_context(acknowledgement: DepositAcknowledgement) -> dict[str, Any]:
    """The signed receipt as the notary can keep and check it with OpenSSH alone: the
    commands that write ``receipt.json`` (its canonical bytes), its SSHSIG and the
    system's allowed_signers line, and the ``ssh-keygen -Y verify`` command."""
    receipt = acknowledgement.receipt
    signature = receipt_sshsig(receipt)
    line = allowed_signers_line(system_signing_key().public_key())
    return {
        "receipt_commands": [
            f"printf '%s' {shlex.quote(canonical_json(receipt).decode())} > receipt.json",
            f"printf '%s' {shlex.quote(signature)} > receipt.json.sig",
            f"printf '%s\\n' {shlex.quote(line)} > allowed_signers",
            f"ssh-keygen -Y verify -f allowed_signers -I escrow -n {namespace('receipt')} "
            "-s receipt.json.sig < receipt.json",
        ],
        "receipt_witnessed": bool(receipt.get("witness")),
        "receipt_in_log": receipt.get("log_inclusion"),
    }
