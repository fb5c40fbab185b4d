from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from escrow.demo import demo_load, demo_refusal
from escrow.demo_scale import ScaleCounts, ScaleRefused, demo_scale
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
        scale = parser.add_argument_group(
            "scale",
            "Add years of history in bulk (after the demo data), to measure lists at scale: "
            "by default 10,000 deposits, 1,000 release claims, 5,000 invoices, 50,000 audit "
            "entries and 3,000 notifications. A second run adds nothing.",
        )
        scale.add_argument(
            "--scale",
            nargs="?",
            const=1.0,
            type=float,
            metavar="FACTOR",
            help="Add the scaled history, every count multiplied by FACTOR (default 1).",
        )
        for name, what in [
            ("deposits", "N deposits"),
            ("claims", "N release claims"),
            ("invoices", "N invoices (and their payments and credit notes)"),
            (
                "audit-entries",
                "at least N audit entries (every seeded change has its entry; read access "
                "fills the log up to N)",
            ),
            ("notifications", "N notifications"),
        ]:
            scale.add_argument(
                f"--{name}",
                type=int,
                metavar="N",
                help=f"With --scale: add {what}, whatever the factor.",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        refusal = demo_refusal(debug=settings.DEBUG, secure=getattr(settings, "SECURE", False))
        if refusal:
            raise CommandError(refusal)
        counts = _scale_counts(options)
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
        write(
            "Notary witness key (SSH, private, never in the database; it co-signs the log "
            f"when acknowledging): {result.witness_key_path} (use it for ~/.ssh/escrow_witness "
            "in the deposit page's ssh-keygen command)"
        )
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
        if counts is not None:
            self._scale(counts)

    def _scale(self, counts: ScaleCounts) -> None:
        try:
            result = demo_scale(counts=counts)
        except ScaleRefused as error:
            raise CommandError(str(error)) from error
        if result.skipped:
            self.stdout.write(self.style.WARNING(result.skipped))
            return
        added = ", ".join(f"{number:,} {what}" for what, number in result.added.items())
        self.stdout.write(self.style.SUCCESS(f"Scaled demo history added: {added}."))


def _scale_counts(options: dict[str, Any]) -> ScaleCounts | None:
    """The counts ``--scale`` and its options ask for (``None`` without ``--scale``)."""
    names = ("deposits", "claims", "invoices", "audit_entries", "notifications")
    given = {name: options.get(name) for name in names}
    if options.get("scale") is None:
        if any(value is not None for value in given.values()):
            raise CommandError("--deposits, --claims and the other counts need --scale.")
        return None
    try:
        return ScaleCounts().times(options["scale"]).but(**given)
    except ValueError as error:
        raise CommandError(str(error)) from error


def _local_sealed_file(result: Any) -> Path | None:
    """The sealed file of the first demo deposit in a local primary site, if there is one."""
    primary = settings.ESCROW_SITES[0]
    if primary["kind"] != "local" or not result.deposits:
        return None
    return Path(primary["path"]) / result.deposits[0].object_key("sealed")
