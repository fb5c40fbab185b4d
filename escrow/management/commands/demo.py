from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from escrow.demo import demo_load


class Command(BaseCommand):
    help = "Create the demo data (idempotent) and print every login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            help="Password for every demo user (default: a new random one each run).",
        )
        parser.add_argument(
            "--identity-file",
            type=Path,
            default=settings.VAR_DIR / "demo" / "notary-identity.txt",
            help="Where the demo notary's age identity (private key) is written.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or secrets.token_urlsafe(9)
        result = demo_load(password=password, identity_path=options["identity_file"])
        write = self.stdout.write
        write(self.style.SUCCESS("Demo data ready. Logins (all on http://127.0.0.1:8000):"))
        for login in result.logins:
            note = f"  ({login.note})" if login.note else ""
            write(f"  {login.door:16} {login.url:9} {login.email:26} {login.password}{note}")
        write(f"Notary TOTP secret (for an authenticator app): {result.totp_secret}")
        write(f"Notary age identity (private key, never in the database): {result.identity_path}")
        write(f"Notary age recipient: {result.notary_recipient}")
