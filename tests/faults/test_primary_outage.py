"""The primary site is cut while the pipeline deposits, and while it retries (issue 12,
faults 1 and 4: a retry while the primary was still down answered 200, then failed
again in the background).

The primary is S3 (moto) behind a relay the test cuts; the deposit goes through a
real gunicorn. Every answer must be the truth: 503 with ``Retry-After`` while the
primary is down, 202 once the deposit is really redone, 200 only when it is stored.
"""

from __future__ import annotations

from collections.abc import Callable

from escrow.models import Deposit
from tests.faults.conftest import (
    World,
    archive_of,
    assert_answer_truthful,
    missing_copies,
    plaintext_left,
    replicated_after_answer,
    s3_site_behind,
)
from tests.faults.relay import Relay
from tests.s3server import MotoServer


def test_uploads_while_the_primary_is_cut_are_answered_503_with_retry_after_then_resume(
    world: World, moto_server: MotoServer, relays: Callable[[str], Relay]
) -> None:
    link = relays(moto_server.endpoint_url)
    world.use_sites([s3_site_behind("primary", moto_server, link), world.sites[1]])
    server = world.gunicorn()
    link.cut()
    body = archive_of(512 * 1024, seed="primary cut")

    for attempt in ("first upload", "curl --retry"):
        answer = world.put(server, "9.0.0", body)
        deposit = Deposit.objects.get(version="9.0.0")
        assert_answer_truthful(answer, deposit.state)
        assert answer.status == 503, (attempt, answer)
        assert int(answer.headers["retry-after"]) > 0, (attempt, answer.headers)
        assert deposit.state not in ("stored", "replicated"), attempt
        assert plaintext_left(world.intake) == [], attempt
        seen = world.status(server, deposit.pk)
        assert seen["state"] == deposit.state
        assert seen["problem"] == deposit.problem

    link.restore()
    resumed = world.put(server, "9.0.0", body)
    deposit.refresh_from_db()
    assert_answer_truthful(resumed, deposit.state)
    assert resumed.status == 202, resumed
    replicated_after_answer(deposit, server)
    # A deposit that succeeded in the end does not keep the old problem's text.
    assert deposit.problem == ""
    assert world.status(server, deposit.pk)["problem"] == ""
    done = world.put(server, "9.0.0", body)
    assert (done.status, done.body["state"]) == (200, "replicated")
    assert missing_copies(deposit) == []
    assert plaintext_left(world.intake) == []
