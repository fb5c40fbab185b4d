"""The one seam between services and Celery: follow-up work is sent by task name.

Services never import task modules (tasks import services, so that would be a
loop). They call :func:`enqueue_on_commit` with a task's name; the task runs
after the surrounding transaction commits, so it never sees uncommitted rows
and never runs for a change that was rolled back.

Every task of ours is an :class:`EscrowTask`: it retries only the transient
errors it names in ``autoretry_for``, with exponential backoff and jitter, a
bounded number of times; the last failure, and any error it names in
``fails_on``, is logged, mailed to staff and handed
to the task's ``give_up`` hook, which records it where a person sees it (for
example, a deposit marked ``failed`` with the reason)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task, current_app
from django.core.mail import mail_admins
from django.db import transaction

logger = logging.getLogger(__name__)


class EscrowTask(Task):
    """Base class of every task: bounded backoff retries, a final failure staff see."""

    max_retries = 5
    #: Errors that end the task for good without a retry (a person must look):
    #: they go to give_up and to staff, like the last failure of a transient one.
    fails_on: tuple[type[BaseException], ...] = ()
    retry_backoff = 5
    retry_backoff_max = 600
    retry_jitter = True

    def retry(self, *args: Any, exc: Exception | None = None, **kwargs: Any) -> Any:
        # In-process (eager) tasks run inside the request that queued them: a retry
        # there would only repeat the failure at once, so they fail straight away
        # and leave the failure where staff see it (give_up), for a later retry.
        if self.request.is_eager and exc is not None:
            raise exc
        return super().retry(*args, exc=exc, **kwargs)  # type: ignore[misc]

    def give_up(self, exc: BaseException, **kwargs: Any) -> None:
        """Record a final failure on the object the task works on (override)."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        logger.error("task %s(%s) failed for good: %s", self.name, kwargs or args, exc)
        try:
            self.give_up(exc, **(kwargs or {}))
        finally:
            mail_admins(
                f"Task {self.name} failed",
                f"{self.name} with {kwargs or args} failed after "
                f"{self.request.retries} retries:\n{exc!r}",
            )


def _task(name: str) -> Task:
    try:
        return current_app.tasks[name]
    except KeyError:
        raise LookupError(f"no Celery task is named {name!r}") from None


_answering = threading.local()


def tasks_after_answer() -> None:
    """In-process tasks queued from now on in this thread with ``after_answer`` wait until
    ``run_after_answer``: the web request being served
    (config.middleware.TasksAfterAnswerMiddleware) has sent its answer. So with the
    embedded default, as with a broker, the pipeline's deposit is answered ``stored`` as
    soon as it is, and its replication follows. Other in-process tasks still run before
    the answer, which can then tell their outcome."""
    _answering.deferred = []


def calls_after_answer() -> None:
    """Calls handed to ``call_after_answer`` from now on in this thread wait until
    ``run_after_answer``: the web request being served (with a broker or without) has
    sent its answer. Calls an earlier request left waiting (its server never reported
    its answer out) run first, so none is dropped."""
    left: list[Callable[[], object]] | None = getattr(_answering, "calls", None)
    _answering.calls = []
    for function in left or ():
        _call_logged(function)


def call_after_answer(function: Callable[[], object]) -> None:
    """Call ``function`` in this process once the answer of the web request being
    served is out; outside a request, now. For local clean-up the answer must not wait
    for, such as removing a gigabyte's intake copy (a quarter of a second's unlink
    here). If the process dies first, nothing else runs it: use it only for what
    something else also catches (the sweeper and the start-up clean-up remove intake
    files no live lease holds). A failure is logged, never raised."""
    calls: list[Callable[[], object]] | None = getattr(_answering, "calls", None)
    if calls is not None:
        calls.append(function)
        return
    _call_logged(function)


def _call_logged(function: Callable[[], object]) -> None:
    try:
        function()
    except Exception:
        logger.exception("%r failed after the answer", function)


def run_after_answer(**_signal: Any) -> None:
    """Run the calls held back by ``call_after_answer``, then the tasks held back by
    ``tasks_after_answer``, each on its own: one failing (recorded and mailed by
    ``enqueue``, as always) never keeps the next from running. Connected to
    ``request_finished``, which the server sends once the answer is out."""
    calls: list[Callable[[], object]] | None = getattr(_answering, "calls", None)
    _answering.calls = None
    for function in calls or ():
        _call_logged(function)
    deferred: list[tuple[str, dict[str, Any]]] | None = getattr(_answering, "deferred", None)
    _answering.deferred = None
    for task_name, kwargs in deferred or ():
        try:
            enqueue(task_name, **kwargs)
        except Exception:
            logger.exception("in-process task %s(%s) failed after the answer", task_name, kwargs)


def enqueue(task_name: str, *, after_answer: bool = False, **kwargs: Any) -> None:
    """Send the named task now, with keyword arguments (ids, never objects). With
    ``after_answer``, an in-process task queued while a web request is served runs once
    its answer is out (``tasks_after_answer``)."""
    task = _task(task_name)
    deferred: list[tuple[str, dict[str, Any]]] | None = getattr(_answering, "deferred", None)
    if after_answer and task.app.conf.task_always_eager and deferred is not None:
        deferred.append((task_name, kwargs))
        return
    if task.app.conf.task_always_eager:
        # In-process, Celery propagates a task's error without calling its
        # on_failure, so it is called here: the failure is recorded where a person
        # sees it (give_up) exactly as a worker would record it. A failure of a kind
        # the task expects (transient or fails_on) must not fail the request too.
        expected = (*(getattr(task, "autoretry_for", ()) or ()), *getattr(task, "fails_on", ()))
        try:
            task.apply_async(kwargs=kwargs)
        except Exception as error:
            task.on_failure(error, "", (), kwargs, ExceptionInfo())
            if not isinstance(error, expected):
                raise
            logger.warning("in-process task %s failed: %s", task_name, error)
        return
    task.apply_async(kwargs=kwargs)


def enqueue_on_commit(task_name: str, *, after_answer: bool = False, **kwargs: Any) -> None:
    """Send the named task once the current transaction commits (at once outside one);
    ``after_answer`` as for ``enqueue``."""
    _task(task_name)  # an unknown name fails here, in the service, not after commit
    transaction.on_commit(lambda: enqueue(task_name, after_answer=after_answer, **kwargs))
