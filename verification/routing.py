"""Where the build verification task runs: on the machine that received the deposit.

The intake copy of the plaintext never leaves the receiving machine, so its build
task goes to that machine's own queue, ``<ESCROW_VERIFY_QUEUE_PREFIX>@<hostname>``,
chosen when the task is sent (which happens on that machine). Every receiving
machine runs a worker for its queue (docs/operations.md). Named in
``CELERY_TASK_ROUTES``; no model is imported, so Celery can load it any time."""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings

VERIFY_TASK = "escrow.deposit_build_verify"


def verification_queue_name() -> str:
    """This machine's verification queue."""
    return f"{settings.ESCROW_VERIFY_QUEUE_PREFIX}@{socket.gethostname()}"


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> Any:
    """Celery router: the verification task to this machine's queue, others unchanged."""
    if name == VERIFY_TASK:
        return {"queue": verification_queue_name()}
    return None
