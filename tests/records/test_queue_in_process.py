"""In-process (the embedded default), Celery raises a task's error without calling its
on_failure. ``records.queue.enqueue`` calls it, so a task that gives up in-process
records its failure where a person sees it, exactly as it would on a worker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from celery import current_app, shared_task

from escrow.models import DataExport
from escrow.services.exports import export_request
from records.models import Notification
from records.queue import EscrowTask, enqueue
from tests.s3server import closed_endpoint_url, s3_site_config


@pytest.fixture()
def unreachable_primary(settings: Any) -> None:
    settings.ESCROW_SITES = [
        s3_site_config("primary", "escrow-primary", closed_endpoint_url()),
        *settings.ESCROW_SITES[1:],
    ]


@pytest.mark.django_db(transaction=True)
def test_an_in_process_task_that_gives_up_records_its_failure(
    subscriber: Any, unreachable_primary: None, mailoutbox: Any, settings: Any
) -> None:
    assert current_app.conf.task_always_eager  # tests/conftest.py, even in CI
    settings.ADMINS = [("Ops", "ops@acme.example")]
    # The request commits; its queued build then runs in-process and the site is down.
    export = export_request(actor=subscriber)
    export.refresh_from_db()
    assert export.state == DataExport.State.FAILED  # not left building for two hours
    assert export.problem.startswith("SiteUnavailable")
    assert Notification.objects.filter(kind="export_failed", audience="staff").exists()
    assert any("escrow.export_build failed" in mail.subject for mail in mailoutbox)


class _Recorded(EscrowTask):
    given_up: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def give_up(self, exc: BaseException, **kwargs: Any) -> None:
        self.given_up.append((repr(exc), kwargs))


@shared_task(base=_Recorded, name="tests.in_process_failure", fails_on=(KeyError,))
def _failing_task(kind: str) -> None:
    raise KeyError(kind) if kind == "expected" else ZeroDivisionError(kind)


def test_an_expected_in_process_failure_is_given_up_and_does_not_fail_the_caller() -> None:
    _Recorded.given_up.clear()
    enqueue("tests.in_process_failure", kind="expected")
    assert _Recorded.given_up == [("KeyError('expected')", {"kind": "expected"})]


def test_an_unexpected_in_process_error_is_given_up_and_still_raised() -> None:
    _Recorded.given_up.clear()
    with pytest.raises(ZeroDivisionError):
        enqueue("tests.in_process_failure", kind="bug")
    assert _Recorded.given_up == [("ZeroDivisionError('bug')", {"kind": "bug"})]
