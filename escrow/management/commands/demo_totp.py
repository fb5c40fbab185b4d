from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role
from escrow.demo import DEMO_TOTP_DEVICE


class Command(BaseCommand):
    help = (
        "Print the current TOTP code of the demo notary's (or, with --staff, the demo "
        "staff member's) demo authenticator (demo only)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--staff", action="store_true", help="the staff member's code")

    def handle(self, *args: Any, **options: Any) -> None:
        # Only the devices the demo created answer here; real people's devices never do.
        role = Role.STAFF if options["staff"] else Role.NOTARY
        device = TOTPDevice.objects.filter(name=DEMO_TOTP_DEVICE, user__role=role).first()
        if device is None:
            raise CommandError("No demo authenticator: run `python manage.py demo` first.")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        self.stdout.write(f"{code:0{device.digits}d}")
