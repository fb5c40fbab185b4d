"""A deposit's body, read straight from the connection when gunicorn serves it.

gunicorn's own body reader (``wsgi.input``) gathers every read in a ``BytesIO`` and
copies it several times in Python: about 1.2 CPU-seconds more per GiB than reading the
socket (docs/benchmarks.md), on a path whose whole budget is about three. When the
request came through gunicorn with a ``Content-Length`` body that nothing has read yet,
``deposit_body`` hands the intake a reader that takes what gunicorn already holds of the
body (its read-ahead from parsing the headers), then the rest from the connection
(``gunicorn.socket``) with ``recv_into``. It keeps gunicorn's count of what is left of
the body true as it goes, so gunicorn never takes the rest of a body for the next
request. Any other server (``runserver``, whose ``wsgi.input`` is already a plain
buffered socket), a chunked body, or one something has started to read, is read through
Django as before.
"""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from django.http import HttpRequest


class SocketBody:
    """``read(size)`` over the rest of a gunicorn request body: first ``ahead`` (what
    gunicorn had read past the headers), then the socket. Never reads past the body."""

    def __init__(self, sock: Any, length_reader: Any, ahead: bytes) -> None:
        self._sock = sock
        self._reader = length_reader
        self._ahead = memoryview(ahead)

    @property
    def remaining(self) -> int:
        return int(self._reader.length)

    def read(self, size: int = -1, /) -> bytes | bytearray:
        if size is None or size < 0:
            size = self.remaining
        size = min(size, self.remaining)
        if size <= 0:
            return b""
        out = bytearray(size)
        view = memoryview(out)
        filled = min(len(self._ahead), size)
        if filled:
            view[:filled] = self._ahead[:filled]
            self._ahead = self._ahead[filled:]
        while filled < size:
            count = self._sock.recv_into(view[filled:], size - filled)
            if not count:
                break  # the client closed early: the body ends here, short
            filled += count
        view.release()
        self._reader.length -= filled
        if filled < size:
            self._reader.length = 0
            del out[filled:]
        return out


def deposit_body(request: HttpRequest) -> BinaryIO:
    """The body to stream into the intake: a ``SocketBody`` under gunicorn when it is safe
    (see the module's documentation), else the request itself."""
    fast = _gunicorn_body(request)
    return cast(BinaryIO, fast if fast is not None else request)


def _gunicorn_body(request: HttpRequest) -> SocketBody | None:
    environ = request.META
    sock = environ.get("gunicorn.socket")
    if sock is None or getattr(request, "_read_started", True):
        return None
    from gunicorn.http.body import Body, LengthReader  # only ever under gunicorn
    from gunicorn.http.unreader import Unreader

    body = environ.get("wsgi.input")
    if type(body) is not Body or type(body.reader) is not LengthReader:
        return None  # chunked, or another server's reader
    reader = body.reader
    unreader = reader.unreader
    try:
        declared = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return None
    if (
        not isinstance(unreader, Unreader)
        or not hasattr(unreader, "take_buffered")
        or body.buf.tell() != 0  # something read through Body already
        or reader.length != declared
    ):
        return None
    held = unreader.take_buffered()
    ahead, beyond = held[: reader.length], held[reader.length :]
    if beyond:
        unreader.unread(beyond)  # a pipelined next request: gunicorn's, not ours
    return SocketBody(sock, reader, ahead)
