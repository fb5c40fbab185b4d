"""Build verification through the real deposit API with the embedded default: the
deposit is answered first, then rebuilt in the real sandbox from the intake copy, and
the outcome is recorded, sealed, signed, mailed and shown. The intake copy is gone
after every outcome, and the deposit's own states never change."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import TestCase

from escrow.models import Deposit
from escrow.services.intake import deposit_receive
from escrow.services.tokens import token_create
from records.models import AuditEntry
from tests import archives
from tests.conftest import skip_or_fail
from tests.verification.projects import (
    FAILING_RECIPE,
    MAIN_C,
    PASSING_RECIPE,
    PRODUCT_RECIPE,
    intake_files,
    project,
    sha256,
)
from vault import sshsig
from vault.keys import system_signing_key
from vault.manifest import canonical_json, verify_manifest
from vault.site_clients import all_sites
from verification.models import BuildVerification, VerificationState
from verification.services import product_recipe_set

pytestmark = pytest.mark.usefixtures("verifying")


def deposited(pipeline: Any, body: bytes, version: str = "1.0.0") -> Deposit:
    response = pipeline.put(version, body)
    assert response.status_code in (200, 202), response.content
    return Deposit.objects.get(pk=response.json()["id"])


def test_a_project_that_builds_passes_with_its_artefacts_hashed_sealed_and_signed(
    sandbox: None, pipeline: Any, settings: Any, notary_identity: Any, tmp_path: Path
) -> None:
    deposit = deposited(pipeline, archives.tar_gz(project(PASSING_RECIPE)))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.PASSED, (record.problem, record.log_tail)
    assert record.badge_label == "Build verified"
    assert record.exit_code == 0 and record.duration_seconds is not None
    assert record.recipe_source == "archive"
    assert record.recipe["command"] == "sh build.sh"
    assert {artefact["path"]: artefact["sha256"] for artefact in record.artefacts} == {
        "out/ledger.txt": sha256(b"ledger 1.0\n"),
        "out/main.c": sha256(MAIN_C),
    }
    assert "building ledger" in record.log_tail
    assert record.toolchain["ok"] is True and "sh" in record.toolchain["found"]
    assert record.lease_until is None and record.finished_at is not None
    assert intake_files(settings) == []

    # The full log is sealed for the notary beside the deposit, and opens with real age.
    assert record.sealed_log_key.startswith(f"deposits/ledger-pro/{deposit.pk}/")
    sealed = all_sites()[0].open(record.sealed_log_key).read()
    assert sha256(sealed) == record.sealed_log_sha256
    identity_file = tmp_path / "notary.txt"
    identity_file.write_text(notary_identity.to_string() + "\n")
    opened = subprocess.run(
        ["age", "--decrypt", "-i", str(identity_file)],
        input=sealed,
        capture_output=True,
        check=True,
    ).stdout
    assert b"building ledger" in opened and b"done" in opened
    assert sha256(opened) == record.addendum["log"]["sha256"]

    # The addendum names the deposit's manifest and is signed, raw and as SSHSIG.
    addendum = record.addendum
    assert addendum["kind"] == "escrow-build-verification/v1"
    assert addendum["deposit"]["manifest_sha256"] == deposit.manifest_sha256
    assert addendum["outcome"] == "passed"
    assert addendum["artefacts"] == record.artefacts
    public_key = system_signing_key().public_key()
    verify_manifest(addendum, record.addendum_signature, public_key)
    sshsig.verify(
        canonical_json(addendum),
        record.addendum_sshsig,
        public_key,
        sshsig.namespace("verification"),
    )
    with pytest.raises(sshsig.SshSigError):
        sshsig.verify(
            canonical_json(addendum | {"outcome": "failed"}),
            record.addendum_sshsig,
            public_key,
            sshsig.namespace("verification"),
        )
    signers = tmp_path / "allowed_signers"
    signers.write_text(sshsig.allowed_signers_line(public_key))
    (tmp_path / "addendum.sig").write_text(record.addendum_sshsig)
    checked = subprocess.run(
        [
            "ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", sshsig.PRINCIPAL,
            "-n", sshsig.namespace("verification"), "-s", str(tmp_path / "addendum.sig"),
        ],
        input=canonical_json(addendum),
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr

    # The deposit went its own way: replicated, with no step of verification's in its history.
    deposit.refresh_from_db()
    assert deposit.state == "replicated" and deposit.problem == ""
    deposit_actions = AuditEntry.objects.filter(object_type="escrow.Deposit").values_list(
        "action", flat=True
    )
    assert not [action for action in deposit_actions if "verif" in action and "build" in action]
    assert list(
        AuditEntry.objects.filter(object_type="verification.BuildVerification")
        .order_by("sequence")
        .values_list("action", flat=True)
    ) == [
        "buildverification.open",
        "buildverification.start",
        "buildverification.finish",
    ]

    # The pipeline sees the outcome.
    shown = pipeline.get(deposit.pk).json()["verification"]
    assert shown["state"] == "passed" and shown["outcome"] == "Build verified"
    assert shown["exit_code"] == 0 and shown["artefacts"] == record.artefacts
    assert "building ledger" in shown["log_tail"]
    assert mail.outbox == []


def test_a_build_that_fails_is_recorded_with_its_log_tail_and_mailed_to_the_vendor(
    sandbox: None, pipeline: Any, settings: Any, product: Any
) -> None:
    deposit = deposited(pipeline, archives.tar_gz(project(FAILING_RECIPE)))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.FAILED
    assert record.exit_code == 2
    assert "missing header ledger.h" in record.log_tail
    assert "missing artefacts: out/ledger" in record.problem
    assert record.addendum["outcome"] == "failed"
    assert intake_files(settings) == []
    deposit.refresh_from_db()
    assert deposit.state == "replicated"

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [product.vendor.contact_email]
    assert "Build failed" in message.subject or "build failed" in message.subject
    assert "missing header ledger.h" in message.body
    assert "exit code 2" in message.body

    shown = pipeline.get(deposit.pk).json()["verification"]
    assert shown["state"] == "failed" and shown["outcome"] == "Build failed"
    assert "missing header ledger.h" in shown["log_tail"]


def test_a_build_that_needs_the_network_fails_naming_the_network_error(
    sandbox: None, pipeline: Any, settings: Any
) -> None:
    recipe = b"""
[build]
command = "mkdir -p out && curl --max-time 10 -fsS https://deb.debian.org/ -o out/page.html"
artefacts = ["out/page.html"]
time_limit = 60
"""
    deposit = deposited(pipeline, archives.tar_gz(project(recipe)))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.FAILED
    assert record.exit_code not in (0, None)
    assert "resolve" in record.log_tail.lower() or "network" in record.log_tail.lower()
    assert intake_files(settings) == []


def test_a_build_past_its_time_limit_is_timed_out_and_the_vendor_told(
    sandbox: None, pipeline: Any, settings: Any, product: Any
) -> None:
    recipe = b"""
[build]
command = "echo starting; sleep 60; mkdir -p out; touch out/app"
artefacts = ["out/app"]
time_limit = 2
"""
    deposit = deposited(pipeline, archives.tar_gz(project(recipe)))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.TIMED_OUT
    assert record.badge_label == "Build timed out"
    assert record.duration_seconds is not None and record.duration_seconds < 30
    assert "time limit" in record.problem
    assert "starting" in record.log_tail
    assert intake_files(settings) == []
    assert [message.to for message in mail.outbox] == [[product.vendor.contact_email]]
    assert "build timed out" in mail.outbox[0].subject
    assert pipeline.get(deposit.pk).json()["verification"]["state"] == "timed_out"


def test_the_build_cannot_see_the_intake_folder_or_its_own_copy(
    sandbox: None, pipeline: Any, settings: Any
) -> None:
    """The source reaches the build as a scratch copy only: the intake folder, with the
    plaintext copy in it, is not in the sandbox, and the copy is unchanged by the build."""
    intake = Path(settings.ESCROW_INTAKE_DIR)
    command = "; ".join(
        [
            "mkdir -p out",
            f"ls -la {intake} > out/seen.txt 2>&1",
            f"cat {intake}/*.verify > out/copy 2>&1",
            f"rm -rf {intake}",
            f"ls {intake} && exit 0 || exit 3",
        ]
    )
    recipe = f"""
[build]
command = "{command}"
artefacts = ["out/seen.txt"]
time_limit = 30
""".encode()
    deposit = deposited(pipeline, archives.tar_gz(project(recipe)))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.FAILED
    assert record.exit_code == 3  # the folder is not there to list, read or remove
    assert intake.is_dir()  # and the host's is untouched
    assert intake_files(settings) == []


def test_an_archive_without_a_recipe_is_no_recipe_with_a_hint_and_nothing_is_built(
    pipeline: Any, settings: Any
) -> None:
    deposit = deposited(pipeline, archives.tar_gz())
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.NO_RECIPE
    assert record.badge_label == "No build recipe"
    assert "escrow.toml" in record.problem and "docs/verification.md" in record.problem
    assert "build-recipe" in record.problem  # where the pipeline sets the product's recipe
    # The inspection saw no recipe file, so nothing was queued: no build started.
    assert record.exit_code is None and record.started_at is None
    assert record.finished_at is not None and record.lease_until is None
    assert verification_actions() == ["buildverification.open", "buildverification.find_no_recipe"]
    assert intake_files(settings) == []
    assert mail.outbox == []
    shown = pipeline.get(deposit.pk).json()["verification"]
    assert shown["state"] == "no_recipe" and "escrow.toml" in shown["problem"]


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_no_recipe_is_known_when_the_pass_ends_and_the_copy_never_outlives_the_request(
    pipeline: Any, settings: Any, django_capture_on_commit_callbacks: Any, kind: str
) -> None:
    """The intake's inspection already lists every member: with no escrow.toml where a
    source root can be and no recipe for the product, the verification is recorded
    ``no_recipe`` in the transaction that stores the deposit, no build is queued, and
    the plaintext copy is removed as soon as the answer is out (nothing reads it
    again)."""
    files = {"ledger-1.0/README": b"no recipe here\n", "ledger-1.0/src/escrow.toml": b"deep\n"}
    body = archives.tar(files) if kind == "tar" else archives.zip_bytes(files)
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        response = pipeline.put("1.0.0", body)
        assert response.status_code in (200, 202), response.content
        # Before any task queued for after the answer has run:
        record = BuildVerification.objects.get(deposit_id=response.json()["id"])
        assert record.state == VerificationState.NO_RECIPE
        assert intake_files(settings) == []
    assert after_commit  # replication was queued; no build was
    assert verification_actions() == ["buildverification.open", "buildverification.find_no_recipe"]


@pytest.mark.parametrize(
    "files",
    [
        {"escrow.toml": b"[build]\n"},  # at the root
        {"ledger-1.0/escrow.toml": b"[build]\n", "ledger-1.0/a.c": b""},  # one folder down
    ],
    ids=["root", "top-folder"],
)
def test_a_recipe_file_where_a_source_root_can_be_keeps_the_copy_for_the_build(
    pipeline: Any, settings: Any, files: dict[str, bytes]
) -> None:
    """A recipe file the inspection saw sends the deposit to the build, which judges it
    (here it is broken: ``[build]`` without a command) after unpacking."""
    deposit = deposited(pipeline, archives.tar_gz(files))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)
    assert record.state == VerificationState.NO_RECIPE
    assert "command" in record.problem  # the recipe was read: the build stage judged it
    assert "buildverification.start" in verification_actions()
    assert intake_files(settings) == []


def verification_actions() -> list[str]:
    return list(
        AuditEntry.objects.filter(object_type="verification.BuildVerification")
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_a_broken_recipe_in_the_archive_is_no_recipe_naming_the_field(
    pipeline: Any, settings: Any
) -> None:
    broken = b'[build]\ncommand = "make"\nartefacts = []\n'
    deposit = deposited(pipeline, archives.tar_gz(project(broken)))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.NO_RECIPE
    assert "escrow.toml" in record.problem and "artefacts" in record.problem
    assert intake_files(settings) == []


def test_the_products_recipe_is_used_when_the_archive_has_none(
    sandbox: None, pipeline: Any, settings: Any, product: Any, staff: Any
) -> None:
    product_recipe_set(product=product, text=PRODUCT_RECIPE, actor=staff)
    deposit = deposited(pipeline, archives.zip_bytes())
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state == VerificationState.PASSED, record.log_tail
    assert record.recipe_source == "product"
    assert record.artefacts == [
        {"path": "dist/app.c", "sha256": sha256(MAIN_C), "size": len(MAIN_C)}
    ]
    assert intake_files(settings) == []


def test_the_archives_own_recipe_wins_over_the_products(
    sandbox: None, pipeline: Any, product: Any, staff: Any
) -> None:
    product_recipe_set(product=product, text=PRODUCT_RECIPE, actor=staff)
    deposit = deposited(pipeline, archives.tar_gz(project(PASSING_RECIPE)))
    record = BuildVerification.objects.get(deposit_id=deposit.pk)
    assert record.state == VerificationState.PASSED
    assert record.recipe_source == "archive"


def test_when_the_queue_is_full_the_deposit_is_busy_and_its_copy_removed_at_once(
    pipeline: Any, settings: Any, product: Any
) -> None:
    settings.ESCROW_VERIFY_SLOTS = 1
    settings.ESCROW_VERIFY_QUEUE = 1
    # Two deposits' verifications wait, their tasks not run yet (a busy machine).
    first = pipeline.put("1.0.0", archives.tar_gz(project(PASSING_RECIPE)), run_tasks=False)
    second = pipeline.put("1.0.1", archives.tar_gz(project(PASSING_RECIPE)), run_tasks=False)
    waiting = [first.json()["id"], second.json()["id"]]
    assert len(intake_files(settings)) == 2  # each held by its pending verification
    assert {
        record.state for record in BuildVerification.objects.filter(deposit_id__in=waiting)
    } == {VerificationState.PENDING}

    third = pipeline.put("1.0.2", archives.tar_gz(project(PASSING_RECIPE)), run_tasks=False)
    assert third.status_code == 202 and third.json()["state"] == "stored"
    record = BuildVerification.objects.get(deposit_id=third.json()["id"])
    assert record.state == VerificationState.BUSY
    assert record.badge_label == "Not verified (busy)"
    assert "2 verifications were already running or waiting" in record.problem
    remaining = intake_files(settings)
    assert len(remaining) == 2 and not any(f"deposit-{record.deposit_id}." in n for n in remaining)
    assert pipeline.get(record.deposit_id).json()["verification"]["state"] == "busy"


def test_with_verification_off_there_is_no_intake_copy_and_no_record(
    pipeline: Any, settings: Any, product: Any, staff: Any
) -> None:
    settings.ESCROW_VERIFY_ENABLED = False
    seen: list[list[str]] = []

    class Watched(io.BytesIO):
        """A body that looks into the intake folder every time a piece is read."""

        def read(self, size: int | None = -1) -> bytes:
            seen.append(intake_files(settings))
            return super().read(size)

    body = archives.tar_gz(project(PASSING_RECIPE))
    issued = token_create(product=product, label="watched", actor=staff)
    with TestCase.captureOnCommitCallbacks(execute=True):
        received = deposit_receive(
            token=issued.token,
            version="2.0.0",
            body=Watched(body),
            claimed_sha256=archives.sha256(body),
            content_length=len(body),
            pipeline={},
        )
    assert received.deposit.state == "stored"
    assert seen and not any(name.endswith(".verify") for names in seen for name in names)
    assert intake_files(settings) == []
    assert BuildVerification.objects.count() == 0
    assert pipeline.get(received.deposit.pk).json()["verification"] is None


def test_a_refused_archive_leaves_no_copy_and_no_record(pipeline: Any, settings: Any) -> None:
    response = pipeline.put("1.0.0", archives.traversal())
    assert response.status_code == 422
    assert intake_files(settings) == []
    assert BuildVerification.objects.count() == 0


def test_a_failed_deposit_removes_its_copy_and_the_upload_again_is_verified(
    pipeline: Any, settings: Any
) -> None:
    primary = Path(settings.ESCROW_SITES[0]["path"])
    primary.parent.mkdir(parents=True, exist_ok=True)
    primary.write_text("not a folder")  # the primary site cannot store anything
    body = archives.tar_gz()
    response = pipeline.put("1.0.0", body)
    assert response.status_code == 503
    assert intake_files(settings) == []
    assert BuildVerification.objects.count() == 0

    primary.unlink()
    again = pipeline.put("1.0.0", body)
    assert again.status_code == 202
    record = BuildVerification.objects.get(deposit_id=again.json()["id"])
    assert record.state == VerificationState.NO_RECIPE
    assert intake_files(settings) == []


@pytest.fixture
def small_intake(settings: Any, tmp_path: Path) -> Any:
    """A 1 MiB tmpfs as the intake folder (root only, as CI runs)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the intake folder needs root (CI runs as root)")
    folder = tmp_path / "small-intake"
    folder.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(folder)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        skip_or_fail(f"cannot mount a tmpfs here: {error}")
    settings.ESCROW_INTAKE_DIR = folder
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_copy_the_full_intake_disk_cannot_hold_never_fails_the_deposit(
    pipeline: Any, small_intake: Path, settings: Any
) -> None:
    """A tar is sealed in one pass without the intake folder; only its verification copy
    needs room there. A disk too small for it leaves the deposit stored, and the
    verification says why it was not verified."""
    body = archives.tar_gz(project(None, **{"data.bin": os.urandom(2 * 1024 * 1024)}))
    response = pipeline.put("1.0.0", body)
    assert response.status_code == 202 and response.json()["state"] == "stored"
    record = BuildVerification.objects.get(deposit_id=response.json()["id"])
    assert record.state == VerificationState.INTERRUPTED
    assert record.problem == (
        "not verified (interrupted): the intake copy could not be written: No space left on device"
    )
    assert intake_files(settings) == []
    assert Deposit.objects.get(pk=record.deposit_id).state == "replicated"


ESCAPES = {
    # name: (command, what the record says (its problem or its log's tail), what the
    # host must not have after)
    "fork without limit": ("f() { f | f & }; f; sleep 20", "Cannot fork", None),
    "allocate 4 GiB": (
        "python3 -c 'b = bytearray(4 * 1024 ** 3); print(len(b))'",
        "memory limit",
        None,
    ),
    "print without end": ("yes escrow", "output limit", None),
    "write outside the scratch folder": (
        "echo owned > /usr/escrow-owned; echo owned > /etc/escrow-owned; "
        "echo owned > /escrow-owned; cat /root/.bashrc; exit 4",
        "Read-only file system",
        ["/usr/escrow-owned", "/etc/escrow-owned", "/escrow-owned"],
    ),
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_a_build_that_tries_to_escape_is_stopped_and_reported_through_the_api(
    escape: str, sandbox: None, pipeline: Any, settings: Any
) -> None:
    """The cases of the sandbox's own tests (tests/vault/test_build_sandbox.py), here end
    to end: deposited over the API, built after the answer, stopped by the sandbox, the
    outcome recorded and served, the copy gone, the deposit and the host untouched."""
    command, reported, host_paths = ESCAPES[escape]
    settings.ESCROW_VERIFY_MEMORY_MB = 512
    settings.ESCROW_VERIFY_PROCESSES = 64
    settings.ESCROW_VERIFY_OUTPUT_MB = 1
    recipe = f"""
[build]
command = {json.dumps(command)}
artefacts = ["out/app"]
time_limit = 5
""".encode()
    deposit = deposited(pipeline, archives.tar_gz(project(recipe)))
    state_before = deposit.state
    record = BuildVerification.objects.get(deposit_id=deposit.pk)

    assert record.state in (VerificationState.FAILED, VerificationState.TIMED_OUT), record.problem
    assert reported in record.problem + record.log_tail, (record.problem, record.log_tail[-500:])
    served = pipeline.get(deposit.pk).json()
    assert served["verification"]["state"] == record.state
    assert served["state"] == state_before  # the deposit's own state never moves
    assert intake_files(settings) == []
    for path in host_paths or []:
        assert not os.path.lexists(path), f"the build wrote {path} on the host"
    leftover = subprocess.run(
        ["ps", "-eo", "uid=,comm="], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    base = settings.ESCROW_VERIFY_UID_BASE
    sandbox_uids = {str(uid) for uid in range(base, base + settings.ESCROW_VERIFY_UID_COUNT)}
    assert [line for line in leftover if line.split()[:1] and line.split()[0] in sandbox_uids] == []
