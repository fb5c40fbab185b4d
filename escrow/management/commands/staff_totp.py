"""``manage.py staff_totp EMAIL``: give a staff member an authenticator for /admin/.

Run on the server by whoever operates it. It prints the secret once, as an
otpauth:// URI for an authenticator app; a staff member who already has one
keeps it unless ``--replace`` is given. Notaries enrol in the notary portal."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role, User
from records.services.audit import audit_record


class Command(BaseCommand):
    help = "Create a staff member's TOTP authenticator for the admin and print its secret once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--replace", action="store_true", help="replace a lost one")

    def handle(self, *args: Any, **options: Any) -> None:
        staff = User.objects.filter(email=options["email"], role=Role.STAFF).first()
        if staff is None:
            raise CommandError(f"No staff member has the e-mail {options['email']!r}.")
        existing = TOTPDevice.objects.filter(user=staff)
        if existing.exists() and not options["replace"]:
            raise CommandError("This staff member has an authenticator; use --replace.")
        with transaction.atomic():
            existing.delete()
            device = TOTPDevice.objects.create(user=staff, name="staff authenticator")
            audit_record(
                action="staff.totp_enrolled",
                actor_label="server command line",
                target=staff,
                details={"replaced": bool(options["replace"])},
            )
        self.stdout.write("Add this to the staff member's authenticator app (shown once):")
        self.stdout.write(device.config_url)
