"""A TCP relay a fault test can cut, restore and slow down, in front of any TCP service.

A storage site (the moto server) is configured at the relay's port, never at
the server's own, so a test decides what the network does:

- ``cut()`` closes the listening socket and resets every open connection: new
  connections are refused and transfers in flight break, as when a route to a
  site drops. ``restore()`` listens on the same port again; the server behind
  kept its state throughout.
- ``throttle(bytes_per_second)`` slows what passes in both directions, so a
  large upload to the site takes long enough for a test to kill the process
  that is sending it while it does.
- ``damage_once(at)`` flips one bit of the byte at offset ``at`` of the next
  connection's bytes towards the server that get that far, as a faulty link or
  network card would: one byte of a large upload arrives wrong.

``tests.s3server.FlakyEndpoint`` is this relay under the names the storage-site
tests use; the server behind may be anything that speaks TCP.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress


class Relay:
    """A loopback listener forwarding every connection to ``target`` (host, port)."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.port = port
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._accepting: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._bytes_per_second: float | None = None
        self._damage_at: int | None = None
        self.connections_accepted = 0
        self.damaged = 0

    @classmethod
    def to_url(cls, url: str) -> Relay:
        """A relay to an ``http://host:port`` URL, already listening."""
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        relay = cls((host, int(port)))
        relay.restore()
        return relay

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def restore(self) -> None:
        """Listen (again) on the relay's port and forward new connections."""
        if self._listener is not None:
            return
        # create_server sets SO_REUSEADDR, so the port is free again right after cut().
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.port = int(self._listener.getsockname()[1])
        self._listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._accepting = threading.Thread(
            target=self._accept_loop, args=(self._listener, self._stopping), daemon=True
        )
        self._accepting.start()

    def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping.set()
        if self._accepting is not None:
            self._accepting.join()
        listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _reset(connection)

    def throttle(self, bytes_per_second: float | None) -> None:
        """Pass at most this many bytes a second per direction of each connection
        (``None``: as fast as the machine goes)."""
        self._bytes_per_second = bytes_per_second

    def damage_once(self, at: int) -> None:
        """Flip a bit of the byte at offset ``at`` of one connection's stream to the server."""
        self._damage_at = at

    def _damage(self, data: bytes, passed: int) -> bytes:
        at = self._damage_at
        if at is None or not passed <= at < passed + len(data):
            return data
        with self._lock:
            if self._damage_at is None:
                return data
            self._damage_at = None
            self.damaged += 1
        damaged = bytearray(data)
        damaged[at - passed] ^= 0x01
        return bytes(damaged)

    def _accept_loop(self, listener: socket.socket, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            self.connections_accepted += 1
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if stopping.is_set():
                    _reset(client)
                    _reset(upstream)
                    continue
                self._connections.update((client, upstream))
            for source, sink, towards_server in (
                (client, upstream, True),
                (upstream, client, False),
            ):
                threading.Thread(
                    target=self._pump, args=(source, sink, towards_server), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, towards_server: bool) -> None:
        passed = 0
        try:
            while data := source.recv(16384):
                if towards_server:
                    data, passed = self._damage(data, passed), passed + len(data)
                sink.sendall(data)
                rate = self._bytes_per_second
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for connection in (source, sink):
                _reset(connection)
                with self._lock:
                    self._connections.discard(connection)


def _reset(connection: socket.socket) -> None:
    with suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()
