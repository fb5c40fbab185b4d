"""Download names: the one place a Content-Disposition header is made.

A name someone typed (an evidence file's name, a deposit's version) never reaches
the header as typed. ``download_name`` keeps a stem of ASCII letters, digits,
dashes, underscores and dots between two digits (a version such as 1.0.2); any
other run of characters becomes one underscore. The extension is always the one
of the type the file was judged to be. So a name cannot close the quoted value
and add a parameter (``"; filename*=...``), name a path, or carry a second
extension (``evil.html.pdf``). ``as_download`` puts it in the header with
Django's ``content_disposition_header`` and forbids caching."""

from __future__ import annotations

import re
import unicodedata
from typing import TypeVar

from django.http import HttpResponseBase
from django.utils.http import content_disposition_header

# age-encrypted files are served as application/octet-stream; callers name them by this.
AGE_CONTENT_TYPE = "application/age"
EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "application/zip": ".zip",
    AGE_CONTENT_TYPE: ".age",
    "application/json": ".json",
}
UNKNOWN_EXTENSION = ".bin"
FALLBACK_STEM = "document"
MAX_STEM = 100
# A name's own extension is dropped when it is one of these; the type decides the real one.
_KNOWN_SUFFIXES = (*EXTENSIONS.values(), ".jpeg", UNKNOWN_EXTENSION)

Response = TypeVar("Response", bound=HttpResponseBase)


def download_name(name: str, content_type: str) -> str:
    """A safe file name for a download: a sanitised stem of ``name`` (``document`` when
    nothing is left) and the extension of ``content_type`` (``.bin`` when unknown)."""
    return _stem(name) + EXTENSIONS.get(content_type, UNKNOWN_EXTENSION)


def _stem(name: str) -> str:
    base = re.split(r"[\\/]", name)[-1]
    # Accented letters keep their base letter (München -> Munchen); other non-ASCII goes.
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    lowered = base.lower()
    for suffix in _KNOWN_SUFFIXES:
        if lowered.endswith(suffix):
            base = base[: -len(suffix)]
            break
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", base)
    # A dot stays only between two digits: any other could start a second extension.
    stem = re.sub(r"(?<![0-9])\.|\.(?![0-9])", "_", stem)
    stem = re.sub(r"_{2,}", "_", stem).strip("._-")
    return stem[:MAX_STEM].strip("._-") or FALLBACK_STEM


def as_download(response: Response, *, name: str, content_type: str) -> Response:
    """Make ``response`` a download (never shown in this site's origin) named by
    ``download_name``, kept by no cache."""
    header = content_disposition_header(True, download_name(name, content_type))
    response["Content-Disposition"] = header or "attachment"
    response["Cache-Control"] = "private, no-store"
    return response
