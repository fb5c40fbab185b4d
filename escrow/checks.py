"""Checks that `manage.py check --deploy` adds for this system.

The embedded default (SQLite, in-process tasks, local folders, a key from
var/) is right on a laptop and wrong in production; these name each one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.db import DatabaseError
from django.db.models import Q
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Organisation, User
from escrow.demo import (
    DEMO_NOTARY_KEY_LABEL,
    DEMO_ORGANISATIONS,
    DEMO_TOTP_DEVICE,
    DEMO_USER_EMAILS,
)
from escrow.models import NotaryRecipient


@register(Tags.security, deploy=True)
def embedded_defaults_in_production(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Refuse every embedded default under ``check --deploy``.

    Long because it is a list: one plain ``if`` per default, each with the
    message that tells the operator which variable to set."""
    errors = []
    if not settings.SECRET_KEY_FROM_ENVIRONMENT:
        errors.append(
            Error(
                "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is not set; the local key under "
                "var/ is for development only.",
                id="escrow.E001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        errors.append(
            Error("DATABASE_URL is not set: production runs on PostgreSQL.", id="escrow.E002")
        )
    if settings.CELERY_TASK_ALWAYS_EAGER:
        errors.append(
            Error(
                "CELERY_BROKER_URL is not set: production runs real Celery workers.",
                id="escrow.E003",
            )
        )
    local_sites = [site["name"] for site in settings.ESCROW_SITES if site["kind"] != "s3"]
    if local_sites:
        errors.append(
            Error(
                f"Storage sites {', '.join(local_sites)} are local folders: set ESCROW_SITES to "
                "S3-compatible buckets.",
                id="escrow.E004",
            )
        )
    if len(settings.ESCROW_SITES) < 2:
        errors.append(
            Error("The vault needs a primary and at least one replica site.", id="escrow.E005")
        )
    if not settings.ESCROW_SIGNING_KEY:
        errors.append(
            Error(
                "ESCROW_SIGNING_KEY (or ESCROW_SIGNING_KEY_FILE) is not set: manifests and "
                "receipts would be signed with a key generated under var/.",
                id="escrow.E007",
            )
        )
    if not settings.ESCROW_EVIDENCE_IDENTITY:
        errors.append(
            Error(
                "ESCROW_EVIDENCE_IDENTITY (or _FILE) is not set: claim evidence would be "
                "sealed to a key generated under var/.",
                id="escrow.E008",
            )
        )
    if not settings.ESCROW_BACKUP_RECIPIENTS:
        errors.append(
            Error(
                "ESCROW_BACKUP_RECIPIENTS is not set: backups would be encrypted to a key "
                "generated under var/ on this server.",
                id="escrow.E009",
            )
        )
    if settings.ESCROW_BACKUP_SITE["kind"] != "s3":
        errors.append(
            Error(
                "ESCROW_BACKUP_SITE_URL is not set to an S3 bucket: backups must be kept at "
                "another site than the original.",
                id="escrow.E010",
            )
        )
    if not settings.ESCROW_PUBLIC_URL.startswith("https://"):
        errors.append(
            Error(
                "ESCROW_PUBLIC_URL is not set to the https:// address of this service "
                f"({settings.ESCROW_PUBLIC_URL or 'empty'}): e-mail links sent from a worker "
                "would point at 127.0.0.1.",
                id="escrow.E011",
            )
        )
    if settings.ESCROW_SIGNATURE_DOMAIN.endswith(".localhost"):
        errors.append(
            Error(
                "ESCROW_SIGNATURE_DOMAIN is the local default "
                f"({settings.ESCROW_SIGNATURE_DOMAIN}): set it once to a domain the operator "
                "holds; every SSHSIG namespace and the transparency log's origin name it.",
                id="escrow.E012",
            )
        )
    if settings.DEBUG:
        errors.append(Error("DJANGO_DEBUG must be false in production.", id="escrow.E006"))
    return errors


@register(Tags.security, deploy=True)
def demo_data_in_production(app_configs: Any, **kwargs: Any) -> list[Error]:
    """Refuse the demo's people and keys under ``check --deploy``: its users have
    passwords printed on a terminal, its notary key's identity is a file under var/
    and its authenticator's secret is printed too (escrow/demo.py)."""
    try:
        users = sorted(
            User.objects.filter(email__in=DEMO_USER_EMAILS).values_list("email", flat=True)
        )
        organisations = sorted(
            Organisation.objects.filter(
                Q(name__in=DEMO_ORGANISATIONS) | Q(contact_email__in=DEMO_ORGANISATIONS.values())
            ).values_list("name", flat=True)
        )
        keys = NotaryRecipient.objects.filter(
            Q(label=DEMO_NOTARY_KEY_LABEL) | Q(notary__email__in=DEMO_USER_EMAILS)
        ).count()
        devices = TOTPDevice.objects.filter(name=DEMO_TOTP_DEVICE).count()
    except DatabaseError:
        # No database to ask (not reachable from where the check runs, or not migrated
        # yet): then it holds no demo data this check could name.
        return []
    errors = []
    if users or organisations:
        errors.append(
            Error(
                "The demo's users or organisations exist: "
                f"{', '.join([*users, *organisations])}. `manage.py demo` is for development "
                "only; delete them (and what they own) before going live.",
                id="escrow.E020",
            )
        )
    if keys or devices:
        errors.append(
            Error(
                f"The demo notary key ({keys} key(s) labelled {DEMO_NOTARY_KEY_LABEL!r} or "
                f"held by a demo user) or the demo authenticator ({devices}) exists: deposits "
                "sealed to it open with a file on disk. Retire it before going live.",
                id="escrow.E021",
            )
        )
    return errors
