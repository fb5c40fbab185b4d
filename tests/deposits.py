"""Deposits made through the real pipeline (check, seal, store, replicate), for tests
that need one in a later state."""

from __future__ import annotations

import io

from django.test import TestCase

from accounts.models import Product, User
from escrow.models import Deposit
from escrow.services.intake import deposit_receive
from escrow.services.replication import deposit_replicate_copies
from escrow.services.tokens import token_create
from tests import archives


def deposit_through_pipeline(
    *, product: Product, staff: User, version: str = "1.0.0", body: bytes | None = None
) -> Deposit:
    """Needs an active notary recipient (the ``notary_identity`` fixture)."""
    body = body if body is not None else archives.tar_gz()
    issued = token_create(product=product, label="test pipeline", actor=staff)
    with TestCase.captureOnCommitCallbacks(execute=True):
        received = deposit_receive(
            token=issued.token,
            version=version,
            body=io.BytesIO(body),
            claimed_sha256=archives.sha256(body),
            content_length=len(body),
            pipeline={},
        )
    deposit = received.deposit
    deposit.refresh_from_db()
    if deposit.state == "stored":
        # Tests marked ``services`` send tasks to a real broker; replicate here so the
        # deposit is complete whichever way tasks run.
        deposit = deposit_replicate_copies(deposit=deposit)
        deposit.refresh_from_db()
    return deposit
