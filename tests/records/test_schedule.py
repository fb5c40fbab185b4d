"""The schedule runs without Celery beat on the embedded default: every job when it
is due, once, with the same schedule production gives Celery beat."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from records.models import ScheduledRun
from records.schedule import jobs_run_due

ROOT = Path(__file__).resolve().parents[2]
RESEND = {"resend": {"task": "records.notifications_send_pending", "schedule": 600}}


def test_a_job_runs_once_per_period(db, settings) -> None:
    settings.CELERY_BEAT_SCHEDULE = RESEND
    now = timezone.now()
    first = jobs_run_due(now=now)
    assert [(run.name, run.ok) for run in first] == [("resend", True)]
    assert jobs_run_due(now=now + timedelta(seconds=599)) == []
    assert [run.name for run in jobs_run_due(now=now + timedelta(seconds=600))] == ["resend"]
    assert ScheduledRun.objects.get().last_run_at == now + timedelta(seconds=600)


def test_a_failing_job_is_reported_and_the_others_still_run(db, settings) -> None:
    settings.CELERY_BEAT_SCHEDULE = RESEND | {
        "broken": {"task": "records.no_such_task", "schedule": 60}
    }
    runs = {run.name: run for run in jobs_run_due(now=timezone.now())}
    assert runs["resend"].ok
    assert not runs["broken"].ok and "no_such_task" in runs["broken"].outcome
    assert ScheduledRun.objects.get(name="broken").last_outcome.startswith("failed")


def test_every_job_of_the_real_schedule_runs_on_the_embedded_default(db) -> None:
    runs = jobs_run_due(now=timezone.now())
    failed = [f"{run.name}: {run.outcome}" for run in runs if not run.ok]
    assert failed == []
    assert len(runs) == len(ScheduledRun.objects.all()) >= 8


def manage(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        **kwargs,  # type: ignore[arg-type]
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """What the shell script printed last (the shell announces its imports first)."""
    return result.stdout.strip().splitlines()[-1]


CLAIM_DUE = """
from datetime import timedelta
from django.utils import timezone
from accounts.models import Product, Role, User
from escrow.models import ReleaseClaim
from escrow.services.claims import claim_eligibility_problem, claim_file, open_claim_of
from escrow.services.evidence import Upload
# A demo customer that may claim a product and has no open claim for it (one per product).
user, product = next(
    (user, product)
    for user in User.objects.filter(role=Role.CUSTOMER).order_by("pk")
    for product in Product.objects.order_by("pk")
    if not claim_eligibility_problem(organisation=user.organisation, product=product)
    and open_claim_of(organisation=user.organisation, product=product) is None
)
claim = claim_file(
    product=product,
    filed_by=user,
    condition="insolvency",
    statement="Declared bankrupt.",
    uploads=[Upload("ruling.pdf", b"%PDF-1.4 ruling")],
)
# Filing notifies the vendor at once (tasks run in-process); its period then ends.
ReleaseClaim.objects.filter(pk=claim.pk).update(
    contest_deadline=timezone.now() - timedelta(minutes=1)
)
print(claim.pk)
"""


def test_a_due_claim_moves_on_by_itself_with_the_embedded_scheduler(tmp_path) -> None:
    # The embedded default, as `make run` starts it, whatever services the suite uses.
    prefixes = ("DJANGO_", "ESCROW_", "DATABASE_", "CELERY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env |= {"DJANGO_DEBUG": "true", "ESCROW_VAR_DIR": str(tmp_path / "var")}
    manage("migrate", "--no-input", "--verbosity", "0", env=env)
    manage("demo", env=env)
    claim_id = last_line(manage("shell", "-c", CLAIM_DUE, env=env))
    state = (
        "from escrow.models import ReleaseClaim; "
        f"print(ReleaseClaim.objects.get(pk={claim_id}).state)"
    )
    assert last_line(manage("shell", "-c", state, env=env)) == "vendor_notified"

    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "run_schedule", "--interval", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        moved = ""
        while time.monotonic() < deadline:
            moved = last_line(manage("shell", "-c", state, env=env))
            if moved == "under_review":
                break
            time.sleep(1)
        assert moved == "under_review"
    finally:
        scheduler.terminate()
        output, _ = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, output
    assert "scheduler: claims-contest-elapsed ok: 1" in output  # one claim moved
    assert "Scheduler stopped." in output
