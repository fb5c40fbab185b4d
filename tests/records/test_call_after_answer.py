"""Local clean-up the answer must not wait for (records.queue.call_after_answer): held
until the server reports the answer out (request_finished), then run before the tasks
queued for after the answer; outside a request, run at once. A failing call is logged
and keeps neither the next call nor the tasks from running."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import path

from config.middleware import TasksAfterAnswerMiddleware
from records import queue

events: list[str] = []


def view(request: HttpRequest) -> HttpResponse:
    queue.call_after_answer(lambda: events.append("first call"))
    queue.call_after_answer(failing)
    queue.call_after_answer(lambda: events.append("second call"))
    events.append("view answered")
    return HttpResponse("ok")


def failing() -> None:
    events.append("failing call")
    raise OSError("the disk is gone")


urlpatterns = [path("after-answer/", view)]


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    events.clear()
    yield
    events.clear()


def test_outside_a_request_the_call_runs_at_once() -> None:
    queue.call_after_answer(lambda: events.append("now"))
    assert events == ["now"]


def test_outside_a_request_a_failing_call_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="records.queue"):
        queue.call_after_answer(failing)
    assert events == ["failing call"]
    assert "failed after the answer" in caplog.text and "the disk is gone" in caplog.text


@pytest.mark.urls(__name__)
def test_in_a_request_the_calls_wait_for_the_answer_and_a_failure_stops_none(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="records.queue"):
        response = Client().get("/after-answer/")
    assert response.status_code == 200
    # Held while the view ran; run, in order, once the answer was out (the test client
    # sends request_finished as a WSGI server does, when it closes the response).
    assert events == ["view answered", "first call", "failing call", "second call"]
    assert "the disk is gone" in caplog.text


@pytest.mark.urls(__name__)
def test_the_calls_run_when_the_server_reports_the_answer_out(db: None) -> None:
    middleware = TasksAfterAnswerMiddleware(view)
    response = middleware(RequestFactory().get("/after-answer/"))
    assert response.status_code == 200
    assert events == ["view answered"]  # the answer is made; nothing has run yet
    request_finished.send(sender=None)
    assert events == ["view answered", "first call", "failing call", "second call"]


@pytest.mark.urls(__name__)
def test_calls_held_by_one_request_never_leak_into_the_next(db: None) -> None:
    Client().get("/after-answer/")
    events.clear()
    queue.call_after_answer(lambda: events.append("outside, after a request"))
    assert events == ["outside, after a request"]


def test_calls_an_unfinished_request_left_run_when_the_next_one_starts(db: None) -> None:
    """A server that never reported an answer out leaves its calls waiting in the
    thread: the next request runs them before it starts, rather than dropping them."""
    middleware = TasksAfterAnswerMiddleware(view)
    middleware(RequestFactory().get("/after-answer/"))  # request_finished never sent
    assert events == ["view answered"]
    middleware(RequestFactory().get("/after-answer/"))
    assert events == [
        "view answered",
        "first call",
        "failing call",
        "second call",
        "view answered",
    ]
    request_finished.send(sender=None)
    assert events[5:] == ["first call", "failing call", "second call"]
