"""The deposit API on the embedded default: local storage sites, tasks in-process."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from escrow.models import Deposit, DepositCopy, NotaryRecipient
from escrow.services.tokens import token_create
from records.models import AuditEntry
from tests import archives
from vault.keys import system_signing_key
from vault.manifest import canonical_json, load_public_key, public_key_text, verify_manifest

URL = "/api/v1/products/ledger-pro/deposits/{version}"


@pytest.fixture
def issued(product, staff):
    return token_create(product=product, label="CI", actor=staff)


@pytest.fixture
def pipeline(issued, notary_identity, django_capture_on_commit_callbacks):
    """A client that deposits like a release pipeline; follow-up tasks run on commit."""

    class Pipeline:
        client = Client()
        identity = notary_identity

        def put(
            self,
            version: str,
            body: bytes,
            *,
            sha: str | None = None,
            token: str | None = None,
            **headers: Any,
        ):
            with django_capture_on_commit_callbacks(execute=True):
                return self.client.put(
                    URL.format(version=version),
                    data=body,
                    content_type="application/octet-stream",
                    HTTP_AUTHORIZATION=f"Bearer {token or issued.secret}",
                    HTTP_X_ARCHIVE_SHA256=sha if sha is not None else archives.sha256(body),
                    **headers,
                )

        def get(self, deposit_id: int, token: str | None = None):
            return self.client.get(
                f"/api/v1/deposits/{deposit_id}",
                HTTP_AUTHORIZATION=f"Bearer {token or issued.secret}",
            )

    return Pipeline()


def stored_files(settings) -> list[Path]:
    return sorted(
        path
        for site in settings.ESCROW_SITES
        for path in Path(site["path"]).rglob("*")
        if path.is_file() and ".quarantine" not in path.parts
    )


def test_a_deposit_is_checked_sealed_stored_and_replicated(pipeline, settings, tmp_path) -> None:
    body = archives.tar_gz()
    response = pipeline.put(
        "1.0.0",
        body,
        HTTP_X_PIPELINE_COMMIT="abc123",
        HTTP_X_PIPELINE_BUILD_URL="https://ci.example/build/7",
    )
    assert response.status_code == 202, response.content
    data = response.json()
    assert data["state"] == "stored"  # replication is queued after the commit
    deposit = Deposit.objects.get(pk=data["id"])
    assert deposit.state == "replicated"
    assert data["status_url"].endswith(f"/api/v1/deposits/{deposit.pk}")

    status = pipeline.get(deposit.pk).json()
    assert status["state"] == "replicated"
    assert status["archive_sha256"] == archives.sha256(body)
    assert status["archive_size"] == len(body)
    assert status["pipeline"] == {"commit": "abc123", "build_url": "https://ci.example/build/7"}
    assert status["manifest"]["member_count"] == len(archives.PROJECT)
    assert {(copy["site"], copy["kind"]) for copy in status["replicas"]} == {
        (site, kind)
        for site in ("primary", "replica")
        for kind in ("sealed", "manifest", "signature")
    }

    # The sealed file in the replica opens with the notary's key and the real age tool.
    sealed = Path(settings.ESCROW_SITES[1]["path"]) / deposit.object_key("sealed")
    key_file = tmp_path / "notary.key"
    key_file.write_text(pipeline.identity.to_string() + "\n")
    opened = subprocess.run(
        ["age", "-d", "-i", str(key_file), str(sealed)], capture_output=True, check=True
    ).stdout
    assert opened == body

    # The stored manifest is the signed one, and describes every member.
    manifest_file = Path(settings.ESCROW_SITES[0]["path"]) / deposit.object_key("manifest")
    signature_file = Path(settings.ESCROW_SITES[0]["path"]) / deposit.object_key("signature")
    manifest = json.loads(manifest_file.read_bytes())
    assert canonical_json(manifest) == manifest_file.read_bytes()
    public = load_public_key(public_key_text(system_signing_key()))
    verify_manifest(manifest, signature_file.read_text(), public)
    assert sorted(
        member["path"] for member in manifest["members"] if member["kind"] == "file"
    ) == sorted(archives.PROJECT)
    assert manifest["pipeline"]["commit"] == "abc123"
    # No plaintext (nor anything else) is left in the intake folder.
    assert [p for p in settings.ESCROW_INTAKE_DIR.rglob("*") if p.is_file()] == []


def test_a_zip_is_accepted_too(pipeline) -> None:
    response = pipeline.put("1.0.0", archives.zip_bytes())
    assert response.status_code == 202
    assert Deposit.objects.get().state == "replicated"


def test_the_same_upload_again_returns_the_existing_deposit(pipeline) -> None:
    body = archives.tar_gz()
    first = pipeline.put("1.0.0", body).json()
    again = pipeline.put("1.0.0", body)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert Deposit.objects.count() == 1


def test_other_content_under_a_deposited_version_is_a_conflict(pipeline, settings) -> None:
    pipeline.put("1.0.0", archives.tar_gz())
    files_before = stored_files(settings)
    other = archives.tar_gz({**archives.PROJECT, "project/src/extra.c": b"/* new */\n"})
    response = pipeline.put("1.0.0", other)
    assert response.status_code == 409
    assert "never changes" in response.json()["detail"]
    assert Deposit.objects.count() == 1
    assert stored_files(settings) == files_before


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: b"this is not an archive at all" * 10, "not_an_archive"),
        (archives.traversal, "path_traversal"),
        (archives.symlink_out, "link_escapes"),
        (archives.fifo, "special_member"),
        (archives.empty_tar, "empty_archive"),
        (lambda: archives.tar_gz()[:-40], "corrupt_archive"),
    ],
)
def test_a_hostile_archive_is_rejected_by_name_and_nothing_is_stored(
    pipeline, settings, build, code
) -> None:
    body = build()
    response = pipeline.put("1.0.0", body)
    assert response.status_code == 422, response.content
    data = response.json()
    assert data["state"] == "rejected"
    assert data["problem"].startswith(f"{code}: ")
    assert stored_files(settings) == []
    assert [p for p in settings.ESCROW_INTAKE_DIR.rglob("*") if p.is_file()] == []
    assert AuditEntry.objects.filter(action="deposit.reject", reason=data["problem"]).exists()


def test_a_body_that_does_not_match_its_hash_is_rejected(pipeline, settings) -> None:
    response = pipeline.put("1.0.0", archives.tar_gz(), sha="0" * 64)
    assert response.status_code == 422
    assert response.json()["problem"].startswith("sha256_mismatch: ")
    assert stored_files(settings) == []


def test_a_body_over_the_size_limit_is_rejected(pipeline, settings) -> None:
    settings.ESCROW_MAX_ARCHIVE_BYTES = 100
    response = pipeline.put("1.0.0", archives.tar_gz())
    assert response.status_code == 422
    assert response.json()["problem"].startswith("too_large_archive: ")
    assert stored_files(settings) == []


def test_a_rejected_version_can_be_deposited_again_correctly(pipeline) -> None:
    assert pipeline.put("1.0.0", archives.traversal()).status_code == 422
    response = pipeline.put("1.0.0", archives.tar_gz())
    assert response.status_code == 202
    assert list(Deposit.objects.order_by("pk").values_list("state", flat=True)) == [
        "rejected",
        "replicated",
    ]


@pytest.mark.parametrize(
    ("version", "sha", "message"),
    [
        ("1.0.0", "not-a-hash", "X-Archive-SHA256 must be"),
        ("1.0.0", "g" * 64, "X-Archive-SHA256 must be"),
        ("1.0.0", "a" * 63, "X-Archive-SHA256 must be"),
        ("..", None, "A version is"),
        ("-rc1", None, "A version is"),
        ("v" * 101, None, "A version is"),
    ],
)
def test_a_malformed_request_is_refused_and_nothing_is_recorded(
    pipeline, version, sha, message
) -> None:
    response = pipeline.put(version, archives.tar_gz(), sha=sha)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Deposit.objects.exists()


def test_metadata_headers_with_control_characters_are_refused(pipeline) -> None:
    response = pipeline.put("1.0.0", archives.tar_gz(), HTTP_X_PIPELINE_COMMIT="abc\x07")
    assert response.status_code == 400
    assert not Deposit.objects.exists()


def test_without_a_notary_key_nothing_is_accepted(pipeline, notary_identity) -> None:
    NotaryRecipient.objects.update(is_active=False)
    response = pipeline.put("1.0.0", archives.tar_gz())
    assert response.status_code == 503
    assert "No active notary key" in response.json()["detail"]
    assert not Deposit.objects.exists()


def test_an_unreachable_primary_answers_503_and_the_same_upload_completes_it(
    pipeline, settings, staff, mailoutbox
) -> None:
    settings.ADMINS = [("Escrow staff", "staff@acme.example")]
    primary = Path(settings.ESCROW_SITES[0]["path"])
    primary.parent.mkdir(parents=True, exist_ok=True)
    primary.write_text("not a folder")  # the primary site cannot store anything
    response = pipeline.put("1.0.0", archives.tar_gz())
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    deposit = Deposit.objects.get()
    # The sealed file never reached the primary, and the plaintext is gone: nothing is
    # kept, so only the upload again can finish it (staff cannot). Sealing is one pass
    # into the primary, so a primary that cannot be written fails it as it is received.
    assert (deposit.state, deposit.failed_from) == ("failed", "received")
    assert deposit.problem.startswith("store: storage site 'primary': ")
    assert deposit.problem.endswith(
        "Nothing of this upload was kept; upload the same archive again once the site is back."
    )
    assert response.json()["state"] == "failed"
    assert response.json()["problem"] == deposit.problem
    assert not DepositCopy.objects.exists()
    assert list(settings.ESCROW_INTAKE_DIR.iterdir()) == []
    told = [
        message for message in mailoutbox if "Deposit ledger-pro 1.0.0 failed" in message.subject
    ]
    assert len(told) == 1
    assert deposit.problem in told[0].body
    assert pipeline.get(deposit.pk).json()["state"] == "failed"

    primary.unlink()
    again = pipeline.put("1.0.0", archives.tar_gz())
    assert again.status_code == 202
    assert again.json()["id"] == deposit.pk
    assert again.json()["problem"] == ""
    deposit.refresh_from_db()
    assert (deposit.state, deposit.problem) == ("replicated", "")
    assert DepositCopy.objects.count() == 6
    assert list(settings.ESCROW_INTAKE_DIR.iterdir()) == []


def test_the_hash_header_may_be_upper_case_hex(pipeline) -> None:
    body = archives.tar_gz()
    response = pipeline.put("1.0.0", body, sha=archives.sha256(body).upper())
    assert response.status_code == 202


def test_a_deposit_also_opens_with_the_approved_break_glass_key(
    pipeline, settings, staff, notary
) -> None:
    from tests.seal import approved_break_glass
    from vault import age

    break_glass = age.X25519Identity.generate()
    approved_break_glass(public_key=break_glass.recipient().to_string(), staff=staff, notary=notary)
    body = archives.tar_gz()
    deposit = Deposit.objects.get(pk=pipeline.put("1.0.0", body).json()["id"])
    assert deposit.manifest["sealed_for"] == sorted(deposit.sealed_for)
    assert deposit.sealed_for == [
        pipeline.identity.recipient().to_string(),
        break_glass.recipient().to_string(),
    ]
    sealed = Path(settings.ESCROW_SITES[0]["path"]) / deposit.object_key("sealed")
    opened = io.BytesIO()
    with sealed.open("rb") as source:
        age.decrypt(source, opened, [break_glass])
    assert opened.getvalue() == body
