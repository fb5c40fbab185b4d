"""Project middleware."""

from __future__ import annotations

from collections.abc import Callable

from celery import current_app
from django.core.exceptions import DisallowedHost
from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponseBase

from records.links import request_origin
from records.queue import calls_after_answer, run_after_answer, tasks_after_answer


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every page a signed-in person sees and on every
    file download, so neither a shared proxy nor the browser's cache (a shared
    computer, the back button after signing out) keeps a copy.

    A response that already says ``no-store`` (Django's ``never_cache``, the
    download views' ``private, no-store``) keeps its own header; any other
    Cache-Control is replaced. Anonymous pages are left as their views made them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if self._private(request, response):
            if "no-store" not in response.get("Cache-Control", "").lower():
                response["Cache-Control"] = "no-store"
            # For HTTP/1.0 caches, which know no Cache-Control.
            response.setdefault("Pragma", "no-cache")
        return response

    @staticmethod
    def _private(request: HttpRequest, response: HttpResponseBase) -> bool:
        disposition = response.get("Content-Disposition", "")
        if disposition.strip().lower().startswith("attachment"):
            return True
        # Static files are answered by WhiteNoise before authentication runs: no user.
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated)


class RequestOriginMiddleware:
    """Remember the scheme and host of the request being served, for
    ``records.links.public_url``: with ESCROW_PUBLIC_URL empty, e-mail links
    then point at the address the person actually used (any port `make run`
    chose), not at a fixed one.

    The host is the one Django validates against ALLOWED_HOSTS; a host it
    refuses is never remembered (the request is answered 400 further on)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            origin: str | None = f"{request.scheme}://{request.get_host()}"
        except DisallowedHost:
            origin = None
        with request_origin(origin):
            return self.get_response(request)


class TasksAfterAnswerMiddleware:
    """With in-process tasks (the embedded default: no broker), the tasks a request
    queues for after its answer (``enqueue(..., after_answer=True)``) run in the same
    process once the answer has been sent: a deposit is answered when it is ``stored``,
    and replicated after, as a Celery worker would do it. If the process dies first, the
    deposit's lease runs out and the sweeper queues the work again. With a broker or
    without, local calls handed to ``records.queue.call_after_answer`` (clean-up the
    answer must not wait for) run there too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        request_finished.connect(run_after_answer, dispatch_uid="records.queue.run_after_answer")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        calls_after_answer()
        if current_app.conf.task_always_eager:
            tasks_after_answer()
        return self.get_response(request)
