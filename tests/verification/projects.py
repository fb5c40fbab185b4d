"""Small projects that build (or do not) in the real sandbox, and a release pipeline
that deposits them through the real deposit API."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.test import Client

from tests import archives

URL = "/api/v1/products/ledger-pro/deposits/{version}"

BUILD_SH = b"""#!/bin/sh
set -e
echo "building ledger"
mkdir -p out
printf 'ledger 1.0\\n' > out/ledger.txt
cp src/main.c out/main.c
echo "done"
"""
PASSING_RECIPE = b"""
[build]
command = "sh build.sh"
artefacts = ["out/ledger.txt", "out/*.c"]
time_limit = 60

[toolchain]
sh = "*"
"""
FAILING_RECIPE = b"""
[build]
command = "echo compiling; echo 'src/main.c:1: error: missing header ledger.h' >&2; exit 2"
artefacts = ["out/ledger"]
time_limit = 60
"""
PRODUCT_RECIPE = """
[build]
command = "mkdir -p dist && cat src/main.c > dist/app.c"
artefacts = ["dist/app.c"]
time_limit = 60
"""
MAIN_C = archives.PROJECT["project/src/main.c"]


def project(recipe: bytes | None, **extra: bytes) -> dict[str, bytes]:
    """The test project with ``build.sh``, and ``escrow.toml`` when a recipe is given."""
    files = dict(archives.PROJECT) | {"project/build.sh": BUILD_SH}
    if recipe is not None:
        files["project/escrow.toml"] = recipe
    return files | {f"project/{name}": content for name, content in extra.items()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def intake_files(settings: Any) -> list[str]:
    """The deposits' files in the intake folder (``deposit-<id>.<lease>.<suffix>``; a
    worker process also makes the empty ``uploads`` folder there)."""
    folder = Path(settings.ESCROW_INTAKE_DIR)
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("deposit-"))


class Pipeline:
    """A release pipeline depositing over the API; tasks queued on commit run when the
    request has been answered, as with the embedded default."""

    def __init__(self, secret: str, capture: Any) -> None:
        self.client = Client()
        self.secret = secret
        self.capture = capture

    def put(self, version: str, body: bytes, *, run_tasks: bool = True) -> Any:
        with self.capture(execute=run_tasks):
            return self.client.put(
                URL.format(version=version),
                data=body,
                content_type="application/octet-stream",
                HTTP_AUTHORIZATION=f"Bearer {self.secret}",
                HTTP_X_ARCHIVE_SHA256=archives.sha256(body),
            )

    def get(self, deposit_id: int) -> Any:
        return self.client.get(
            f"/api/v1/deposits/{deposit_id}", HTTP_AUTHORIZATION=f"Bearer {self.secret}"
        )
