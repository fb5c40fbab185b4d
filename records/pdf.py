"""The one place documents become PDFs: a template and its context, through WeasyPrint."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string


def pdf_render(*, template: str, context: dict[str, Any]) -> bytes:
    """Render a template to HTML and the HTML to PDF bytes."""
    # Imported here, not at the top: loading Pango costs about a second, which
    # every process (and the app-free vault command) would otherwise pay at start-up.
    from weasyprint import HTML

    return bytes(HTML(string=render_to_string(template, context)).write_pdf())
