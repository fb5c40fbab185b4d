"""Error pages that need more than Django's defaults (``handler400`` in config/urls.py)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.html import format_html
from django.views import defaults

from escrow.services.evidence import CHUNK_SIZE, too_many_documents_message


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 page, except for a request with more files than
    DATA_UPLOAD_MAX_NUMBER_FILES (= ESCROW_EVIDENCE_MAX_FILES). Django refuses that
    while parsing the body, as soon as the file past the limit starts and before any
    view runs (the CSRF check is the first to read the form), so no view can answer
    it: this page names the limit instead."""
    if not isinstance(exception, TooManyFilesSent):
        return defaults.bad_request(request, exception)
    _discard_rest_of_body(request)
    return HttpResponseBadRequest(
        format_html(
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<title>Too many documents</title></head><body><h1>Too many documents</h1>"
            "<p>{} Nothing was stored. Go back and send the documents again, "
            "at most {} in one go.</p></body></html>",
            too_many_documents_message(),
            settings.ESCROW_EVIDENCE_MAX_FILES,
        )
    )


def _discard_rest_of_body(request: HttpRequest) -> None:
    """Read what is left of the body in chunks and drop it, so the browser, still
    sending, reads this answer instead of a reset connection (and the development
    server does not read the rest in one piece). Bounded by what the most documents
    allowed could weigh."""
    budget = settings.ESCROW_EVIDENCE_MAX_FILES * settings.ESCROW_EVIDENCE_MAX_BYTES
    try:
        while budget > 0 and (chunk := request.read(CHUNK_SIZE)):
            budget -= len(chunk)
    except OSError:
        pass  # the client went away; nobody is left to read the answer
