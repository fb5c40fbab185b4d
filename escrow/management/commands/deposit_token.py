from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Product
from escrow.models import DepositToken
from escrow.services.tokens import token_create, token_revoke


class Command(BaseCommand):
    help = "Create, list or revoke release-pipeline deposit tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a token; it is printed once.")
        create.add_argument("--product", required=True, help="The product's slug.")
        create.add_argument("--label", default="release pipeline")
        create.add_argument(
            "--allow",
            action="append",
            default=[],
            metavar="CIDR",
            help="A network the pipeline calls from (repeatable).",
        )
        create.add_argument("--expires-days", type=int, metavar="N")
        actions.add_parser("list", help="List tokens (never their secrets).")
        revoke = actions.add_parser("revoke", help="Revoke a token by its id part.")
        revoke.add_argument("prefix", help="The part after esc_, e.g. 3f9c0a1b2c3d.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        product = Product.objects.filter(slug=options["product"]).first()
        if product is None:
            raise CommandError(f"No product with slug {options['product']!r}.")
        try:
            issued = token_create(
                product=product,
                label=options["label"],
                actor=None,
                allowed_networks=options["allow"],
                expires_in_days=options["expires_days"],
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stderr.write(f"Token for {product.slug} (shown once; store it as a pipeline secret):")
        self.stdout.write(issued.secret)

    def _list(self, options: dict[str, Any]) -> None:
        for token in DepositToken.objects.select_related("product"):
            state = "revoked" if token.revoked_at else ("usable" if token.is_usable else "expired")
            networks = ",".join(token.allowed_networks) or "anywhere"
            self.stdout.write(
                f"{token.prefix}  {token.product.slug:20} {state:8} {networks}  {token.label}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        token = DepositToken.objects.filter(prefix=options["prefix"]).first()
        if token is None:
            raise CommandError(f"No token {options['prefix']!r}.")
        token_revoke(token=token, actor=None, reason="revoked with manage.py deposit_token")
        self.stdout.write(f"Revoked {token.prefix}.")
