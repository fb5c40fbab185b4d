from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from escrow.demo import DEMO_TOTP_DEVICE


class Command(BaseCommand):
    help = "Print the current TOTP code of the demo notary's demo authenticator (demo only)."

    def handle(self, *args: Any, **options: Any) -> None:
        # Only the device the demo created answers here; real notaries' devices never do.
        device = TOTPDevice.objects.filter(name=DEMO_TOTP_DEVICE).first()
        if device is None:
            raise CommandError("No demo authenticator: run `python manage.py demo` first.")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        self.stdout.write(f"{code:0{device.digits}d}")
