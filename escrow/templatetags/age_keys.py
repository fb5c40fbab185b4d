"""Showing age recipients to people: ``{% load age_keys %}``.

A hybrid post-quantum recipient (``age1pq1...``) is about 1,960 characters, too
long for a table cell, so ``{{ key|age_key }}`` shows a short, fingerprint-like
form (its start and end) with its kind, and keeps the whole key one click away
in a ``<details>`` block where it can be selected and copied. X25519 keys (62
characters) are shown whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from vault.age import KIND_HYBRID, recipient_kind

register = template.Library()

#: Keys up to this length are shown whole (an X25519 recipient is 62 characters).
_SHORT_ENOUGH = 80


@register.filter(name="age_key_short")
def short_key(key: str) -> str:
    """The start and the end of a long key, e.g. ``age1pq1x34nzsvr…3qheyty7saeq0d3fzv49zc0k``."""
    key = (key or "").strip()
    if len(key) <= _SHORT_ENOUGH:
        return key
    return f"{key[:16]}…{key[-24:]}"


@register.filter
def age_key_kind(key: str) -> str:
    """``X25519`` or ``hybrid post-quantum (ML-KEM-768 + X25519)``."""
    return recipient_kind(key or "")


@register.filter
def age_key(key: str) -> SafeString:
    """The key in its short form, with its kind; a long key stays copyable in full."""
    key = (key or "").strip()
    if len(key) <= _SHORT_ENOUGH:
        return format_html(
            '<code class="age-key">{}</code> <span class="age-key-kind">({})</span>',
            key,
            recipient_kind(key),
        )
    return format_html(
        '<code class="age-key" title="{}">{}</code> <span class="age-key-kind">({})</span>'
        '<details class="age-key-full"><summary>Full key ({} characters)</summary>'
        "<code>{}</code></details>",
        recipient_kind(key),
        short_key(key),
        recipient_kind(key),
        len(key),
        key,
    )


@register.simple_tag
def age_keys_all_post_quantum(keys: Iterable[object]) -> bool:
    """Whether every key (a string, or an object with ``public_key``) is hybrid."""
    texts = [str(getattr(key, "public_key", key)) for key in keys]
    return bool(texts) and all(recipient_kind(text) == KIND_HYBRID for text in texts)
