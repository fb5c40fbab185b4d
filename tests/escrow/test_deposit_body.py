"""The deposit body read straight from gunicorn's socket (escrow.api.body), over a real
socket pair with gunicorn's own body classes, as its sync worker builds them."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.test import RequestFactory
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import SocketUnreader

from escrow.api.body import SocketBody, deposit_body

NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def gunicorn_request(server: socket.socket, length: int, *, read_ahead: bytes = b"") -> WSGIRequest:
    """A Django request as gunicorn's sync worker hands it over: ``wsgi.input`` is a
    ``Body`` over a ``LengthReader`` whose unreader already holds ``read_ahead`` (what
    gunicorn read past the headers)."""
    unreader = SocketUnreader(server)
    if read_ahead:
        unreader.unread(read_ahead)
    body = Body(LengthReader(unreader, length))
    request = RequestFactory().generic("PUT", "/api/v1/x", content_type="application/octet-stream")
    request.META.update(
        {"gunicorn.socket": server, "wsgi.input": body, "CONTENT_LENGTH": str(length)}
    )
    return request


def send_later(client: socket.socket, data: bytes, *, close: bool = False) -> threading.Thread:
    def send() -> None:
        client.sendall(data)
        if close:
            client.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def read_all(body: BinaryIO, piece: int) -> bytes:
    out = bytearray()
    while chunk := body.read(piece):
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("ahead", [0, 1, 4096, 3 * 1024 * 1024])
def test_the_body_arrives_whole_from_read_ahead_and_socket_and_not_a_byte_more(
    pair: tuple[socket.socket, socket.socket], ahead: int
) -> None:
    server, client = pair
    data = os.urandom(3 * 1024 * 1024 + 17)
    request = gunicorn_request(server, len(data), read_ahead=data[:ahead])
    sender = send_later(client, data[ahead:] + NEXT_REQUEST)
    body = deposit_body(request)
    assert isinstance(body, SocketBody)
    assert read_all(body, 512 * 1024) == data
    sender.join(10)
    reader = request.META["wsgi.input"].reader
    assert reader.length == 0  # gunicorn knows the body is over
    # The next request on the connection is untouched, for gunicorn to read.
    assert reader.unreader.read(len(NEXT_REQUEST)) == NEXT_REQUEST


def test_a_next_request_already_read_ahead_is_given_back_to_gunicorn(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    data = b"a small archive"
    request = gunicorn_request(server, len(data), read_ahead=data + NEXT_REQUEST)
    body = deposit_body(request)
    assert read_all(body, 4) == data
    unreader = request.META["wsgi.input"].reader.unreader
    assert unreader.read(len(NEXT_REQUEST)) == NEXT_REQUEST


def test_a_client_that_closes_early_gives_a_short_body_and_gunicorn_expects_no_more(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    data = os.urandom(100_000)
    request = gunicorn_request(server, 1_000_000, read_ahead=data[:10])
    send_later(client, data[10:], close=True).join(10)
    body = deposit_body(request)
    assert read_all(body, 64 * 1024) == data
    assert body.read(10) == b""
    assert request.META["wsgi.input"].reader.length == 0


def test_a_body_something_started_to_read_is_left_to_django(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    data = os.urandom(10_000)
    request = gunicorn_request(server, len(data), read_ahead=data)
    request.META["wsgi.input"].read(10)
    assert deposit_body(request) is request

    again = gunicorn_request(server, len(data), read_ahead=data)
    again._read_started = True  # type: ignore[attr-defined]
    assert deposit_body(again) is again


def test_a_chunked_body_or_another_server_is_read_through_django(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    chunked = gunicorn_request(server, 0)
    chunked.META["wsgi.input"] = Body(ChunkedReader(None, SocketUnreader(server)))
    assert deposit_body(chunked) is chunked

    plain = RequestFactory().generic("PUT", "/api/v1/x", data=b"abc")
    assert deposit_body(plain) is plain
    assert plain.read() == b"abc"


def test_a_content_length_that_disagrees_with_gunicorns_count_is_left_to_django(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    request = gunicorn_request(server, 100, read_ahead=b"x" * 100)
    request.META["CONTENT_LENGTH"] = "99"
    assert deposit_body(request) is request
    request.META["CONTENT_LENGTH"] = "not a number"
    assert deposit_body(request) is request
