from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from escrow.demo import demo_load, demo_refusal
from records.links import public_origin


class Command(BaseCommand):
    help = "Create the demo data (idempotent) and print every login and where each journey starts."

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
        refusal = demo_refusal(debug=settings.DEBUG, secure=getattr(settings, "SECURE", False))
        if refusal:
            raise CommandError(refusal)
        password = options["password"] or secrets.token_urlsafe(9)
        try:
            result = demo_load(password=password, identity_path=options["identity_file"])
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        write = self.stdout.write
        site = public_origin()
        write(self.style.SUCCESS(f"Demo data ready. Logins (all on {site}):"))
        for login in result.logins:
            note = f"  ({login.note})" if login.note else ""
            url = f"{site}{login.url}"
            write(f"  {login.door:16} {url:32} {login.email:26} {login.password}{note}")
        write(f"Notary TOTP secret (for an authenticator app): {result.totp_secret}")
        write(f"Staff TOTP secret (the admin asks for a code too): {result.staff_totp_secret}")
        write(f"Notary age identity (private key, never in the database): {result.identity_path}")
        write(f"Notary age recipient: {result.notary_recipient}")
        write("Deposits (sealed for the notary, copied to every site):")
        for deposit in result.deposits:
            write(f"  {deposit.product.slug} {deposit.version}: {deposit.get_state_display()}")
        sealed = _local_sealed_file(result)
        if sealed:
            write(f"Open one with the age tool: age -d -i {result.identity_path} {sealed} | tar tz")
        write(f"Deposit API token for ledger-pro (shown once): {result.pipeline_token}")
        write(f"Northwind's release key (to open a released file): {result.release_key_path}")
        write(self.style.SUCCESS("Where each journey starts:"))
        for journey in result.journeys:
            note = f" ({journey.note})" if journey.note else ""
            write(f"  {journey.title}{note}")
            write(f"      {site}{journey.path}  signed in as {journey.email}")


def _local_sealed_file(result: Any) -> Path | None:
    """The sealed file of the first demo deposit in a local primary site, if there is one."""
    primary = settings.ESCROW_SITES[0]
    if primary["kind"] != "local" or not result.deposits:
        return None
    return Path(primary["path"]) / result.deposits[0].object_key("sealed")
