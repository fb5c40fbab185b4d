"""The deposit manifest: contents, completeness warnings, canonical form, signatures."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import tarfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from vault.archive import ArchiveLimits, ArchiveMember, ArchiveReport, inspect_archive
from vault.manifest import (
    ManifestError,
    ManifestSignatureError,
    build_manifest,
    canonical_json,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    manifest_sha256,
    public_key_text,
    sign_manifest,
    signing_key_pem,
    verify_manifest,
)
from vault.manifest_completeness import (
    NO_BUILD_FILE,
    NO_LICENCE,
    NO_LOCK_FILE,
    NO_README,
    UNPINNED_REQUIREMENTS,
)

CREATED = datetime(2026, 5, 9, 7, 35, 25, tzinfo=UTC)
PIPELINE = {"commit": "3f2a9c1", "build_url": "https://ci.example.com/builds/42"}


def file(path: str, size: int = 10) -> ArchiveMember:
    return ArchiveMember(path, "file", size=size, sha256=hashlib.sha256(path.encode()).hexdigest())


def report_of(*members: ArchiveMember, pinned: tuple[str, ...] = ()) -> ArchiveReport:
    return ArchiveReport(
        format="tar+gzip",
        size=1234,
        sha256="ab" * 32,
        members=tuple(sorted(members, key=lambda m: m.path)),
        pinned_requirements=pinned,
    )


def manifest_of(report: ArchiveReport, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "product": "Ledger",
        "version": "4.2.0",
        "pipeline": PIPELINE,
        "report": report,
        "created_at": CREATED,
    }
    arguments.update(overrides)
    return build_manifest(**arguments)


COMPLETE = report_of(
    ArchiveMember("ledger-4.2", "dir"),
    file("ledger-4.2/README.md"),
    file("ledger-4.2/LICENSE"),
    file("ledger-4.2/pyproject.toml"),
    file("ledger-4.2/uv.lock"),
    file("ledger-4.2/src/ledger/app.py", 5000),
    ArchiveMember("ledger-4.2/docs/readme", "symlink", target="../README.md"),
)


# --- contents -------------------------------------------------------------------------------


def test_it_describes_the_product_pipeline_archive_and_members() -> None:
    manifest = manifest_of(COMPLETE)

    assert manifest["schema"] == "escrow-manifest/1"
    assert (manifest["product"], manifest["version"]) == ("Ledger", "4.2.0")
    assert manifest["created_at"] == "2026-05-09T07:35:25Z"
    assert manifest["pipeline"] == PIPELINE
    assert manifest["archive"] == {"format": "tar+gzip", "size": 1234, "sha256": "ab" * 32}
    app = next(m for m in manifest["members"] if m["path"] == "ledger-4.2/src/ledger/app.py")
    assert app == {
        "path": "ledger-4.2/src/ledger/app.py",
        "kind": "file",
        "size": 5000,
        "sha256": hashlib.sha256(b"ledger-4.2/src/ledger/app.py").hexdigest(),
    }
    link = next(m for m in manifest["members"] if m["kind"] == "symlink")
    assert link["target"] == "../README.md"
    assert "sha256" not in link


def test_it_records_created_at_in_utc() -> None:
    local = CREATED.astimezone(timezone(timedelta(hours=2)))
    assert manifest_of(COMPLETE, created_at=local)["created_at"] == "2026-05-09T07:35:25Z"


def test_it_describes_a_real_inspected_archive(tmp_path: Path) -> None:
    source = tmp_path / "Makefile"
    source.write_bytes(b"all:\n\tcc main.c\n")
    path = tmp_path / "deposit.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, "app/Makefile")
    manifest = manifest_of(inspect_archive(path, limits=ArchiveLimits()))
    assert manifest["archive"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["members"][0]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["completeness"]["build_files"]["nearest"] == ["app/Makefile"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"product": ""},
        {"version": "x" * 201},
        {"version": "1.0\n"},
        {"pipeline": {"Commit": "abc"}},
        {"pipeline": {"commit": 42}},
        {"pipeline": {"build_url": "u" * 2001}},
        {"pipeline": {f"k{i}": "v" for i in range(33)}},
        {"created_at": datetime(2026, 5, 9, 7, 35)},
    ],
)
def test_it_refuses_metadata_that_does_not_fit(overrides: dict[str, Any]) -> None:
    with pytest.raises(ManifestError):
        manifest_of(COMPLETE, **overrides)


# --- completeness --------------------------------------------------------------------------


def test_a_complete_deposit_has_no_warnings() -> None:
    summary = manifest_of(COMPLETE)["completeness"]

    assert summary["warnings"] == []
    assert summary["files"] == 5
    assert summary["total_size"] == 5040
    assert summary["build_files"] == {
        "present": True,
        "count": 1,
        "nearest": ["ledger-4.2/pyproject.toml"],
    }
    assert summary["lock_files"]["nearest"] == ["ledger-4.2/uv.lock"]
    assert summary["readme"]["nearest"] == ["ledger-4.2/README.md"]
    assert summary["licence"]["nearest"] == ["ledger-4.2/LICENSE"]


def test_it_warns_about_each_missing_essential() -> None:
    summary = manifest_of(report_of(file("src/main.c")))["completeness"]

    assert summary["warnings"] == [NO_BUILD_FILE, NO_LOCK_FILE, NO_README, NO_LICENCE]
    assert not any(summary[key]["present"] for key in ("build_files", "lock_files", "readme"))
    assert "a rebuild may pull different library versions" in NO_LOCK_FILE


def test_it_reports_the_shallowest_matches_and_counts_the_rest() -> None:
    report = report_of(
        file("app/Makefile"),
        file("app/CMakeLists.txt"),
        file("app/lib/zlib/CMakeLists.txt"),
        file("app/lib/zlib/README"),
        file("app/docs/README.md"),
        file("app/COPYING.LESSER"),
        file("app/Cargo.lock"),
    )
    summary = manifest_of(report)["completeness"]

    assert summary["build_files"] == {
        "present": True,
        "count": 3,
        "nearest": ["app/CMakeLists.txt", "app/Makefile"],
    }
    assert summary["readme"]["nearest"] == ["app/docs/README.md"]
    assert summary["licence"]["present"]
    assert summary["warnings"] == []


def test_lock_files_inside_dependency_folders_do_not_count() -> None:
    report = report_of(
        file("README"),
        file("LICENCE.txt"),
        file("package.json"),
        file("node_modules/left-pad/package-lock.json"),
    )
    summary = manifest_of(report)["completeness"]
    assert not summary["lock_files"]["present"]
    assert summary["warnings"] == [NO_LOCK_FILE]


def test_pinned_requirements_count_as_a_lock_file_and_unpinned_ones_are_named() -> None:
    members = (file("README"), file("LICENSE"), file("setup.py"), file("requirements.txt"))
    pinned = manifest_of(report_of(*members, pinned=("requirements.txt",)))["completeness"]
    unpinned = manifest_of(report_of(*members))["completeness"]

    assert pinned["lock_files"]["nearest"] == ["requirements.txt"]
    assert pinned["warnings"] == []
    assert unpinned["warnings"] == [UNPINNED_REQUIREMENTS]


def test_it_sums_size_by_extension_with_the_tail_as_other() -> None:
    members = [file(f"f{i}.e{i:02d}", size=100 - i) for i in range(12)]
    members += [file("a.py", 500), file("b.PY", 500), file("Makefile", 1)]
    rows = manifest_of(report_of(*members))["completeness"]["size_by_extension"]

    assert rows[0] == {"extension": ".py", "files": 2, "size": 1000}
    assert len(rows) == 11
    assert rows[-1] == {"extension": "other", "files": 4, "size": 91 + 90 + 89 + 1}


# --- canonical form and signatures ----------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    data = canonical_json({"b": 1, "a": {"d": "café", "c": [1, 2]}})
    assert data == '{"a":{"c":[1,2],"d":"café"},"b":1}'.encode()
    manifest = manifest_of(COMPLETE)
    assert json.loads(canonical_json(manifest)) == manifest
    assert manifest_sha256(manifest) == hashlib.sha256(canonical_json(manifest)).hexdigest()


def test_a_signed_manifest_verifies() -> None:
    key = generate_signing_key()
    manifest = manifest_of(COMPLETE)
    signature = sign_manifest(manifest, key)

    verify_manifest(manifest, signature, key.public_key())
    verify_manifest(json.loads(json.dumps(manifest)), signature, key.public_key())


def _with_changed_member_hash(manifest: dict[str, Any]) -> None:
    manifest["members"][0]["sha256"] = "0" * 64


def _with_changed_version_byte(manifest: dict[str, Any]) -> None:
    manifest["version"] = "4.2.1"


def _with_added_pipeline_entry(manifest: dict[str, Any]) -> None:
    manifest["pipeline"]["signed_by"] = "someone else"


@pytest.mark.parametrize(
    "change",
    [_with_changed_member_hash, _with_changed_version_byte, _with_added_pipeline_entry],
)
def test_any_change_to_a_signed_manifest_fails_verification(change: Any) -> None:
    key = generate_signing_key()
    manifest = manifest_of(COMPLETE)
    signature = sign_manifest(manifest, key)
    changed = copy.deepcopy(manifest)
    change(changed)

    with pytest.raises(ManifestSignatureError, match="changed since it was signed"):
        verify_manifest(changed, signature, key.public_key())


def test_a_signature_from_another_key_fails_verification() -> None:
    manifest = manifest_of(COMPLETE)
    signature = sign_manifest(manifest, generate_signing_key())
    with pytest.raises(ManifestSignatureError):
        verify_manifest(manifest, signature, generate_signing_key().public_key())


@pytest.mark.parametrize("signature", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_signature_fails_verification(signature: str) -> None:
    key = generate_signing_key()
    with pytest.raises(ManifestSignatureError):
        verify_manifest(manifest_of(COMPLETE), signature, key.public_key())


# --- key formats ---------------------------------------------------------------------------


def test_a_signing_key_round_trips_through_pem_and_raw_bytes() -> None:
    key = generate_signing_key()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = signing_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")

    for loaded in (
        load_signing_key(pem),
        load_signing_key(b"\n" + pem + b"\n"),
        load_signing_key(raw),
    ):
        assert public_key_text(loaded) == public_key_text(key)


def test_a_public_key_round_trips_through_its_text_form() -> None:
    key = generate_signing_key()
    text = public_key_text(key)
    manifest = manifest_of(COMPLETE)

    assert text.startswith("ed25519:")
    assert len(base64.b64decode(text.removeprefix("ed25519:"))) == 32
    verify_manifest(manifest, sign_manifest(manifest, key), load_public_key(text))


@pytest.mark.parametrize("data", [b"", b"x" * 31, b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_it_refuses_an_unreadable_signing_key(data: bytes) -> None:
    with pytest.raises(ManifestError):
        load_signing_key(data)


@pytest.mark.parametrize("text", ["ssh-ed25519 AAAA", "ed25519:!!", "ed25519:" + "A" * 40])
def test_it_refuses_an_unreadable_public_key(text: str) -> None:
    with pytest.raises(ManifestError):
        load_public_key(text)
