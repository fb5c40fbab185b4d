"""A tarpit for fault tests: a loopback TCP server that accepts connections and never
answers, as a hung storage site does (a frozen process, a stuck load balancer).

Unlike a closed port, which refuses at once, a tarpit leaves the client waiting:
only its own timeouts end the wait. Every accepted connection is held open (and what
the client sends is read and dropped, so its writes never block) until ``close()``.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from types import TracebackType


class Tarpit:
    """``with Tarpit() as pit:`` point a client at ``pit.endpoint_url``; it hangs."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so close() ends the accept loop promptly
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="tarpit", daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            conn.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._held.append(conn)
            threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()

    def _swallow(self, conn: socket.socket) -> None:
        # Read and drop the request so the client's send never blocks; never answer.
        with suppress(OSError):
            while conn.recv(65536):
                pass

    def close(self) -> None:
        self._closed.set()
        with suppress(OSError):
            self._listener.close()
        with self._lock:
            for conn in self._held:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
                with suppress(OSError):
                    conn.close()
            self._held.clear()
        self._thread.join(timeout=5)

    def __enter__(self) -> Tarpit:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
