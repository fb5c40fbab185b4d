"""``manage.py notary_bootstrap``: set up the very first notary, once, on the server.

Staff cannot create notaries in the admin, and later seal keys change only with
a notary's approval; so the first notary, and its key, come from the server's
command line. The command refuses to run once any notary or key exists, and
writes to the audit chain."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from escrow.services.seal_changes import notary_bootstrap
from records.services.transitions import TransitionRefused


class Command(BaseCommand):
    help = "Create the first notary and the age key deposits are sealed for (runs once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", required=True, help="The notary's full name.")
        parser.add_argument("--recipient", required=True, help="The notary's age1... key.")
        parser.add_argument("--label", default="notary's safe", help="Where the key is kept.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            notary, password = notary_bootstrap(
                email=options["email"],
                full_name=options["name"],
                public_key=options["recipient"],
                label=options["label"],
            )
        except TransitionRefused as refused:
            raise CommandError(str(refused)) from refused
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(f"Notary {notary.email} created, with the key {options['recipient']}.")
        self.stdout.write(f"One-time password (give it to the notary only): {password}")
        self.stdout.write("At first sign-in at /notary/ the notary enrols an authenticator app.")
