from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from billing.payments import PaymentRefused, parse_amount, payment_record


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--date {raw!r} is not a date like 2026-11-26.") from None


class Command(BaseCommand):
    help = "Record a payment of exactly the amount due on an invoice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("invoice_number", help="e.g. 2026-00042")
        parser.add_argument("amount", help="the amount received, e.g. 630.00")
        parser.add_argument("--date", help="when it was received (default: today), YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            amount = parse_amount(options["amount"])
        except ValidationError as error:
            raise CommandError(error.messages[0]) from error
        received_on = _date(options["date"]) if options["date"] else timezone.localdate()
        try:
            payment = payment_record(
                invoice_number=options["invoice_number"],
                amount=amount,
                received_on=received_on,
                actor=None,
            )
        except PaymentRefused as refused:
            raise CommandError(str(refused)) from refused
        invoice = payment.invoice
        self.stdout.write(
            f"Recorded {invoice.currency} {payment.amount} for invoice {invoice.number}; "
            f"{invoice.currency} {invoice.amount_due()} remains due."
        )
