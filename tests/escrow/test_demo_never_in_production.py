"""Demo data never reaches production: `manage.py demo` refuses to run unless DEBUG is
on and the deploy settings are off, and `manage.py check --deploy` refuses the demo's
users, organisations, notary key and authenticator wherever they are found."""

from __future__ import annotations

import io

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from accounts.models import Organisation, User
from escrow.checks import demo_data_in_production
from escrow.demo import DEMO_ORGANISATIONS, DEMO_USER_EMAILS
from escrow.models import NotaryRecipient
from tests.config.test_settings_from_env import PRODUCTION, manage


def ids(errors: list[Error]) -> list[str]:
    return [error.id or "" for error in errors]


def test_the_demo_refuses_to_run_with_debug_off(tmp_path) -> None:
    result = manage("demo", env={"DJANGO_DEBUG": "false", "ESCROW_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "Refusing to load demo data: DEBUG is off" in result.stderr
    assert "DJANGO_DEBUG=true" in result.stderr  # the message says how to run it
    assert "Demo data ready" not in result.stdout
    assert not (tmp_path / "demo").exists()  # not even the notary identity file


def test_the_demo_refuses_to_run_under_the_deploy_settings(tmp_path) -> None:
    # Even with DEBUG switched on by mistake, production's settings stop it.
    env = PRODUCTION | {"DJANGO_DEBUG": "true", "ESCROW_VAR_DIR": str(tmp_path)}
    result = manage("demo", env=env)
    assert result.returncode != 0
    assert "the deploy settings are in force (DJANGO_SECURE=true)" in result.stderr
    assert "Demo data ready" not in result.stdout


@pytest.mark.django_db
def test_the_demo_refusal_is_the_command_s_own(settings, tmp_path) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("demo", identity_file=tmp_path / "notary.txt", stdout=io.StringIO())
    settings.DEBUG, settings.SECURE = True, True
    with pytest.raises(CommandError, match="deploy settings are in force"):
        call_command("demo", identity_file=tmp_path / "notary.txt", stdout=io.StringIO())
    assert not User.objects.exists()


@pytest.mark.django_db
def test_the_deploy_check_finds_every_piece_of_demo_data(settings, tmp_path) -> None:
    assert demo_data_in_production(None) == []
    settings.DEBUG = True  # as `make run` sets it
    call_command("demo", identity_file=tmp_path / "notary.txt", stdout=io.StringIO())
    errors = demo_data_in_production(None)
    assert ids(errors) == ["escrow.E020", "escrow.E021"]
    for name in [*DEMO_USER_EMAILS, *DEMO_ORGANISATIONS]:
        assert name in errors[0].msg
    assert "Demo identity file" in errors[1].msg
    # And `manage.py check --deploy` fails on them.
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", deploy=True, stdout=io.StringIO(), stderr=io.StringIO())
    assert "escrow.E020" in str(failed.value)
    assert "escrow.E021" in str(failed.value)


@pytest.mark.django_db
def test_the_demo_key_alone_is_enough_to_fail(notary) -> None:
    # A renamed demo notary still leaves its key, labelled as the demo labels it.
    notary.email = "someone@notaris.nl"
    notary.save()
    NotaryRecipient.objects.create(
        notary=notary,
        label="Demo identity file",
        public_key="age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
    )
    assert ids(demo_data_in_production(None)) == ["escrow.E021"]


@pytest.mark.django_db
def test_real_people_pass_the_check() -> None:
    organisation = Organisation.objects.create(
        name="Real Customer N.V.", kind="customer", country="BE", contact_email="it@real.be"
    )
    User.objects.create_user(
        "ops@real.be",
        "a long password",
        full_name="Ops",
        role="customer",
        organisation=organisation,
    )
    assert demo_data_in_production(None) == []
