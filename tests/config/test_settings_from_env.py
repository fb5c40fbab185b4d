from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_decimal, env_int, env_list, env_str
from config.storage_sites import sites_from_env
from vault.age import X25519Identity
from vault.manifest import generate_signing_key, signing_key_pem

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("FALSE", False), ("1", True), ("off", False), ("", True)]
)
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected) -> None:
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG", default=True) is expected


@pytest.mark.parametrize("raw", ["maybe", "ture", "2", "yes please"])
def test_env_bool_refuses_anything_else_by_name(monkeypatch, raw) -> None:
    monkeypatch.setenv("DJANGO_DEBUG", raw)
    with pytest.raises(ImproperlyConfigured, match="DJANGO_DEBUG must be true or false"):
        env_bool("DJANGO_DEBUG", default=False)


def test_env_int_and_decimal_refuse_bad_numbers(monkeypatch) -> None:
    monkeypatch.setenv("EMAIL_PORT", "twenty-five")
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT must be a whole number"):
        env_int("EMAIL_PORT", 25)
    monkeypatch.setenv("EMAIL_PORT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("EMAIL_PORT", 25, minimum=1)
    for raw in ["five percent", "Infinity", "NaN"]:
        monkeypatch.setenv("ESCROW_FEE_RATE", raw)
        with pytest.raises(ImproperlyConfigured, match="ESCROW_FEE_RATE must be a"):
            env_decimal("ESCROW_FEE_RATE", "0.05")
    monkeypatch.setenv("ESCROW_FEE_RATE", "0.045")
    assert env_decimal("ESCROW_FEE_RATE", "0.05") == Decimal("0.045")


def test_secrets_can_come_from_a_file_but_not_from_both(monkeypatch, tmp_path) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("DJANGO_SECRET_KEY_FILE", str(secret))
    assert env_str("DJANGO_SECRET_KEY") == "s3cret"
    monkeypatch.setenv("DJANGO_SECRET_KEY", "inline")
    with pytest.raises(
        ImproperlyConfigured, match="either DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE"
    ):
        env_str("DJANGO_SECRET_KEY")
    monkeypatch.delenv("DJANGO_SECRET_KEY")
    monkeypatch.setenv("DJANGO_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY_FILE: cannot read"):
        env_str("DJANGO_SECRET_KEY")


def test_env_list_drops_blanks(monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", " a.example , ,b.example,")
    assert env_list("DJANGO_ALLOWED_HOSTS") == ["a.example", "b.example"]


def test_without_escrow_sites_the_vault_is_two_local_folders(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("ESCROW_SITES", raising=False)
    sites = sites_from_env(tmp_path)
    assert [(site["name"], site["kind"]) for site in sites] == [
        ("primary", "local"),
        ("replica", "local"),
    ]
    assert sites[0]["path"] == str(tmp_path / "primary")


def test_s3_and_local_sites_are_read_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ESCROW_SITES", "primary,offsite-2")
    monkeypatch.setenv("ESCROW_SITE_PRIMARY_URL", "s3://escrow-primary")
    monkeypatch.setenv("ESCROW_SITE_PRIMARY_ENDPOINT", "https://s3.eu-central-1.amazonaws.com")
    monkeypatch.setenv("ESCROW_SITE_PRIMARY_REGION", "eu-central-1")
    monkeypatch.setenv("ESCROW_SITE_PRIMARY_ACCESS_KEY_ID", "AKIA")
    key_file = tmp_path / "secret"
    key_file.write_text("very-secret")
    monkeypatch.setenv("ESCROW_SITE_PRIMARY_SECRET_ACCESS_KEY_FILE", str(key_file))
    monkeypatch.setenv("ESCROW_SITE_OFFSITE_2_URL", f"file://{tmp_path}/offsite")
    primary, offsite = sites_from_env(tmp_path)
    assert primary["kind"] == "s3"
    assert primary["bucket"] == "escrow-primary"
    assert primary["region"] == "eu-central-1"
    assert primary["secret_access_key"] == "very-secret"
    assert (offsite["kind"], offsite["path"]) == ("local", f"{tmp_path}/offsite")


@pytest.mark.parametrize(
    ("names", "variables", "message"),
    [
        ("primary,primary", {}, "lists a site twice"),
        ("../etc", {}, "not a valid site name"),
        ("primary", {}, "ESCROW_SITE_PRIMARY_URL is not set"),
        (
            "primary",
            {"ESCROW_SITE_PRIMARY_URL": "ftp://host/x"},
            "must start with file:// or s3://",
        ),
        ("primary", {"ESCROW_SITE_PRIMARY_URL": "file://relative/path"}, "file:///absolute/path"),
        ("primary", {"ESCROW_SITE_PRIMARY_URL": "s3://Bad_Bucket"}, "s3://bucket-name"),
        ("primary", {"ESCROW_SITE_PRIMARY_URL": "s3://bucket/with/path"}, "s3://bucket-name"),
        (
            "primary",
            {
                "ESCROW_SITE_PRIMARY_URL": "s3://escrow",
                "ESCROW_SITE_PRIMARY_ENDPOINT": "javascript:x",
            },
            "must be an http(s) URL",
        ),
    ],
)
def test_a_bad_site_configuration_is_refused_by_name(
    monkeypatch, tmp_path, names, variables, message
) -> None:
    monkeypatch.setenv("ESCROW_SITES", names)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        sites_from_env(tmp_path)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "ESCROW_", "DATABASE_", "CELERY_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PRODUCTION = {
    "ESCROW_BACKUP_RECIPIENTS": X25519Identity.generate().recipient().to_string(),
    "ESCROW_BACKUP_SITE_URL": "s3://escrow-backups",
    "ESCROW_BACKUP_SITE_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
    "ESCROW_EVIDENCE_IDENTITY": X25519Identity.generate().to_string(),
    "ESCROW_SIGNING_KEY": signing_key_pem(generate_signing_key()).decode(),
    "DJANGO_SECRET_KEY": "x" * 20 + "production-only-secret-key-with-enough-entropy-0123456789",
    "DJANGO_ALLOWED_HOSTS": "escrow.example.com",
    "ESCROW_PUBLIC_URL": "https://escrow.example.com",
    "ESCROW_SIGNATURE_DOMAIN": "escrow.example.com",
    "DJANGO_SECURE": "true",
    "DATABASE_URL": "postgres://escrow@db.example.com:5432/escrow",
    "CELERY_BROKER_URL": "redis://broker.example.com:6379/0",
    "ESCROW_SITES": "primary,replica",
    "ESCROW_SITE_PRIMARY_URL": "s3://escrow-primary",
    "ESCROW_SITE_REPLICA_URL": "s3://escrow-replica",
    "ESCROW_SITE_REPLICA_ENDPOINT": "https://s3.other-provider.example",
}


def test_the_deploy_check_passes_when_production_is_configured(tmp_path) -> None:
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=PRODUCTION | {"ESCROW_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_names_every_embedded_default_left_in_place(tmp_path) -> None:
    result = manage("check", "--deploy", env={"ESCROW_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    for code in [
        "escrow.E001",
        "escrow.E002",
        "escrow.E003",
        "escrow.E004",
        "escrow.E007",
        "escrow.E008",
        "escrow.E009",
        "escrow.E010",
        "escrow.E011",
        "escrow.E012",
        "security.W004",
        "security.W008",
        "security.W012",
        "security.W016",
    ]:
        assert code in result.stderr, code


def test_a_typo_in_the_environment_stops_start_up_with_its_name(tmp_path) -> None:
    result = manage("check", env={"ESCROW_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "ture"})
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be true or false, not 'ture'" in result.stderr


def test_an_unknown_object_lock_mode_stops_start_up_by_name(tmp_path) -> None:
    result = manage(
        "check", env={"ESCROW_OBJECT_LOCK_MODE": "FOREVER", "ESCROW_VAR_DIR": str(tmp_path)}
    )
    assert result.returncode != 0
    assert "ESCROW_OBJECT_LOCK_MODE must be GOVERNANCE or COMPLIANCE" in result.stderr


def test_a_fresh_checkout_migrates_with_only_a_secret_key_set(tmp_path) -> None:
    var = tmp_path / "var"  # does not exist yet, as in a fresh clone
    result = manage(
        "migrate",
        "--no-input",
        env={"DJANGO_SECRET_KEY": "a-secret-from-the-environment", "ESCROW_VAR_DIR": str(var)},
    )
    assert result.returncode == 0, result.stderr
    assert (var / "db.sqlite3").is_file()
    assert not (var / "secret_key").exists()  # the key came from the environment
