"""Under gunicorn the deposit body is read straight from the connection (escrow.api.body):
a real gunicorn takes that path, the archive arrives whole, and a client that goes away
halfway leaves nothing behind."""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path

from escrow.models import Deposit, DepositState
from tests import archives
from tests.faults.conftest import (
    World,
    archive_of,
    missing_copies,
    plaintext_left,
    replicated_after_answer,
    wait_for,
)
from vault.site_clients import all_sites
from verification.models import BuildVerification


def test_a_deposit_through_gunicorn_is_read_from_its_socket_and_stored_whole(
    world: World,
) -> None:
    server = world.gunicorn()
    body = archive_of(6 * 1024 * 1024 + 12345, seed="socket body")
    answer = world.put(server, "1.0.0", body)

    assert answer.status == 202, answer
    deposit = Deposit.objects.get(pk=answer.body["id"])
    assert deposit.state == DepositState.STORED
    # The intake hashed what it read: the claimed SHA-256 matched, so every byte came
    # through, in order, and none from beyond the body.
    assert deposit.archive_sha256 == archives.sha256(body)
    assert deposit.archive_size == len(body)
    assert '"body": "SocketBody"' in server.log.read_text(), "gunicorn's own reader was used"
    replicated_after_answer(deposit, server)
    assert missing_copies(deposit) == []


def test_with_build_verification_a_deposit_with_no_recipe_leaves_no_plaintext(
    world: World,
) -> None:
    """The pass writes the intake copy for build verification; with no recipe in the
    archive or for the product, the worker records ``no_recipe`` when it stores the
    deposit and removes the copy itself once the answer is out
    (records.queue.call_after_answer): no build runs and nothing is left behind."""
    world.extra_env["ESCROW_VERIFY_ENABLED"] = "true"
    server = world.gunicorn()
    body = archive_of(3 * 1024 * 1024, seed="no recipe")
    answer = world.put(server, "3.0.0", body)

    assert answer.status == 202, answer
    record = BuildVerification.objects.get(deposit_id=answer.body["id"])
    assert (record.state, record.started_at) == ("no_recipe", None)
    wait_for(
        lambda: plaintext_left(world.intake) == [],
        timeout=30,
        message=lambda: f"plaintext left in the intake: {plaintext_left(world.intake)}",
    )
    replicated_after_answer(Deposit.objects.get(pk=answer.body["id"]), server)


def test_a_client_gone_halfway_through_gunicorn_leaves_no_object_and_no_plaintext(
    world: World,
) -> None:
    server = world.gunicorn()
    body = archive_of(4 * 1024 * 1024, seed="gone halfway")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("PUT", f"/api/v1/products/{world.product_slug}/deposits/2.0.0")
    for name, value in {
        "Authorization": f"Bearer {world.secret}",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(body)),
        "X-Archive-SHA256": archives.sha256(body),
    }.items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(body[: len(body) // 2])
    time.sleep(0.5)  # the intake is reading the body when the client goes
    assert connection.sock is not None
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()

    deposit = wait_for(
        lambda: (
            Deposit.objects.filter(version="2.0.0").exclude(state=DepositState.RECEIVED).first()
        ),
        timeout=60,
        message=lambda: f"the deposit never left received; log:\n{server.log.read_text()[-3000:]}",
    )
    assert deposit.state in (DepositState.REJECTED, DepositState.FAILED), deposit.state
    assert plaintext_left(world.intake) == []
    folder = f"deposits/{world.product_slug}/{deposit.pk}"
    for site in all_sites():
        assert list(site.keys(folder)) == [], site.name
    for config in world.sites:  # not even a hidden temporary file
        left = [path for path in (Path(config["path"]) / folder).rglob("*") if path.is_file()]
        assert left == [], config["name"]
