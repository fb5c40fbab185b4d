"""The transparency log, published: its latest signed checkpoint and the proofs anyone
needs to check that a deposit is in it and that the log only ever grew.

``GET /api/v1/log/checkpoint`` (the C2SP signed note as text, or ``?format=json``),
``GET /api/v1/log/proof/inclusion?deposit=ID`` and
``GET /api/v1/log/proof/consistency?old=N&new=M``. Public and read-only: they show
hashes and signatures, never a manifest or anything sealed. Plain Django views like
the allowed_signers door (escrow/api/key_views.py): no token, no schema. Asking for the
checkpoint stores one for the current size if none exists yet (one per size)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from escrow.models import Deposit
from transparency.services import (
    LogError,
    checkpoint_at,
    checkpoint_latest,
    consistency_proof_between,
    inclusion_proof_for,
    root_at,
)
from vault import signed_note
from vault.keys import system_signing_key

#: The largest number a size or id parameter may be: more is certainly wrong, and the
#: database's big integers stop there.
LARGEST = 2**63 - 1


class BadParameter(ValueError):
    """A query parameter that is missing or not what the endpoint takes."""


def _problem(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _positive(request: HttpRequest, name: str) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        raise BadParameter(f"The query parameter '{name}' is required.")
    if not raw.isascii() or not raw.isdigit():
        raise BadParameter(f"'{name}' must be a positive whole number, not {raw[:40]!r}.")
    value = int(raw)
    if not 1 <= value <= LARGEST:
        raise BadParameter(f"'{name}' must be a positive whole number, not {raw[:40]!r}.")
    return value


@require_GET
def checkpoint(request: HttpRequest) -> HttpResponse:
    """The signed note of the whole log as it is now (text/plain), or as JSON with its
    SSHSIG and the note verifier key."""
    wanted = request.GET.get("format", "text")
    if wanted not in ("text", "json"):
        return _problem(400, f"'format' is 'text' or 'json', not {wanted[:40]!r}.")
    latest = checkpoint_latest()
    if latest is None:
        return _problem(404, "The log is empty: no deposit has been sealed yet.")
    if wanted == "text":
        return HttpResponse(latest.note, content_type="text/plain; charset=utf-8")
    origin = signed_note.log_origin()
    body: dict[str, Any] = {
        "origin": origin,
        "size": latest.size,
        "root": latest.root,
        "note": latest.note,
        "sshsig": latest.sshsig,
        "verifier_key": signed_note.verifier_key(origin, system_signing_key().public_key()),
    }
    return JsonResponse(body)


@require_GET
def inclusion_proof(request: HttpRequest) -> HttpResponse:
    """The deposit's inclusion proof against the latest checkpoint."""
    try:
        deposit_id = _positive(request, "deposit")
    except BadParameter as error:
        return _problem(400, str(error))
    try:
        proof = inclusion_proof_for(deposit_id)
    except LogError as error:
        # The stored leaves no longer match a signed root: never serve a proof then.
        return _problem(500, f"The log cannot prove anything now: {error}")
    if proof is None:
        if not Deposit.objects.filter(pk=deposit_id).exists():
            return _problem(404, f"There is no deposit {deposit_id}.")
        return _problem(404, f"Deposit {deposit_id} is not in the log: it has not been sealed.")
    return JsonResponse(proof.as_dict())


@require_GET
def consistency_proof(request: HttpRequest) -> HttpResponse:
    """The proof that the log of ``old`` leaves is a prefix of the log of ``new``."""
    try:
        old, new = _positive(request, "old"), _positive(request, "new")
        proof = consistency_proof_between(old, new)
    except (BadParameter, LogError) as error:
        return _problem(400, str(error))
    new_checkpoint = checkpoint_at(new)
    old_checkpoint = checkpoint_at(old)
    return JsonResponse(
        {
            "old_size": old,
            "new_size": new,
            "old_root": root_at(old),
            "new_root": root_at(new),
            "proof": proof,
            "old_checkpoint": old_checkpoint.note if old_checkpoint else None,
            "new_checkpoint": new_checkpoint.note if new_checkpoint else None,
        }
    )
