"""The forms of billing's admin actions: each money action asks for what it needs
(and why) on a page of its own, and confirms before anything is recorded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from billing.payments import parse_amount

REASON_HELP = "Kept in the audit log and printed on the credit note."


class AmountField(forms.CharField):
    """An amount typed by staff, read by ``parse_amount``: a positive amount in cents."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=40, **kwargs)

    def clean(self, value: Any) -> Decimal:
        text = super().clean(value)
        try:
            return parse_amount(text)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None


def iso_date_field(help_text: str) -> forms.DateField:
    """A day written as YYYY-MM-DD, shown so too (whatever the admin's language)."""
    return forms.DateField(
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(format="%Y-%m-%d"),
        help_text=help_text,
        error_messages={"invalid": "Enter a valid date, like 2026-11-26."},
    )


class PaymentActionForm(forms.Form):
    amount = AmountField(help_text="Exactly the amount due, e.g. 605.00.")
    received_on = iso_date_field("The day the money arrived (YYYY-MM-DD).")


class CreditNoteActionForm(forms.Form):
    reason = forms.CharField(max_length=250, help_text=REASON_HELP)


class RefundActionForm(forms.Form):
    amount = AmountField(help_text="At most what is owed back on the invoice.")
    paid_on = iso_date_field("The day the refund was paid (YYYY-MM-DD).")
    reason = forms.CharField(max_length=300, help_text="Kept with the refund and mailed.")


class EndCoverActionForm(forms.Form):
    reason = forms.CharField(max_length=200, help_text=REASON_HELP)
