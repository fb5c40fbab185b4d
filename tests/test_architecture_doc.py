"""docs/architecture.md cannot drift from the code: its layer picture is the
import-linter contract, and its tables name every URL prefix and every task,
each with a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from tools.architecture_diagram import block

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()
OUR_APPS = ("records", "billing", "transparency", "verification", "escrow")


def _section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def _first_segments(patterns: list, prefix: str = "") -> set[str]:
    segments = set()
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver) and route == "":
            segments |= _first_segments(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern | URLResolver):
            segments.add(route.split("/")[0])
    return segments


def test_the_layer_picture_is_the_import_linter_contract() -> None:
    assert block() in DOC, "redraw it: python tools/architecture_diagram.py"


def test_every_url_prefix_is_in_the_table() -> None:
    table = _section("One hop from a URL or a task to its code")
    missing = [
        segment
        for segment in sorted(_first_segments(get_resolver().url_patterns))
        if f"`/{segment}/" not in table and not (segment == "" and "| `/` |" in table)
    ]
    assert missing == []


def test_every_task_is_in_the_table_with_the_service_it_calls() -> None:
    table = _section("One hop from a URL or a task to its code")
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    ours = {name for name in current_app.tasks if name.split(".")[0] in OUR_APPS}
    assert scheduled <= ours, "a scheduled task names no registered task"
    for name in sorted(ours):
        row = next((line for line in table.splitlines() if line.startswith(f"| `{name}` |")), "")
        assert row, f"{name} is not in the task table"
        service = name.split(".", 1)[1]
        assert f"`{service}`" in row, f"{name}'s row does not name the service {service}"


def test_every_file_the_tables_name_exists() -> None:
    named = set(re.findall(r"`([a-z_]+(?:/[a-z_]+)*\.py)`", _section("Layers")))
    named |= set(
        re.findall(
            r"`([a-z_]+/[a-z_/]+\.py)`", _section("One hop from a URL or a task to its code")
        )
    )
    assert named, "the tables name no files: the check would prove nothing"
    missing = sorted(path for path in named if "/" in path and not (ROOT / path).is_file())
    assert missing == []
