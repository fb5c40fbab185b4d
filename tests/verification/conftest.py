"""Fixtures of the build verification tests. None is autouse: each test asks for what
it needs (the page tests here make their records by hand)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from escrow.services.tokens import token_create
from tests.conftest import skip_or_fail
from tests.parallel import uid_range_base
from tests.verification.projects import Pipeline
from vault.build_sandbox import sandbox_available


@pytest.fixture
def sandbox() -> None:
    reason = sandbox_available()
    if reason is not None:
        skip_or_fail(f"the build sandbox cannot run here: {reason}")


@pytest.fixture
def verifying(settings: Any) -> Iterator[None]:
    """Build verification on, in a uid range of these tests' own (another test process
    building at the same time, another xdist worker's included, never shares a uid
    with ours)."""
    settings.ESCROW_VERIFY_ENABLED = True
    settings.ESCROW_VERIFY_UID_COUNT = 8
    settings.ESCROW_VERIFY_UID_BASE = uid_range_base(64000, settings.ESCROW_VERIFY_UID_COUNT)
    yield


@pytest.fixture
def pipeline(
    product: Any, staff: Any, notary_identity: Any, django_capture_on_commit_callbacks: Any
) -> Pipeline:
    issued = token_create(product=product, label="CI", actor=staff)
    return Pipeline(issued.secret, django_capture_on_commit_callbacks)
