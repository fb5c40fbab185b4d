"""The system's public signing key, published for anyone to check its signatures.

``GET /api/v1/keys/allowed_signers`` answers one line of an OpenSSH allowed_signers
file: save it and ``ssh-keygen -Y verify -f allowed_signers -I escrow -n <namespace>
-s <file>.sig < <file>`` checks a manifest, certificate or receipt signature with
nothing but OpenSSH (docs/security.md). A plain Django view, not part of the deposit
API: it needs no token and no schema, and it only reads the key."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from vault.keys import system_signing_key
from vault.sshsig import allowed_signers_line


@require_GET
def allowed_signers(request: HttpRequest) -> HttpResponse:
    """The system key's allowed_signers line, as text with a final newline."""
    line = allowed_signers_line(system_signing_key().public_key())
    response = HttpResponse(line + "\n", content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="allowed_signers"'
    return response
