"""The forms of billing's admin actions: each money action asks for what it needs
(and why) on a page of its own, and confirms before anything is recorded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from django import forms
from django.core import signing
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.invoicing import creditable_net
from billing.models import Invoice
from billing.payments import parse_amount, parse_reference

REASON_HELP = "Kept in the audit log and printed on the credit note."


class AmountField(forms.CharField):
    """An amount typed by staff, read by ``parse_amount``: a positive amount in cents."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=40, **kwargs)

    def clean(self, value: Any) -> Decimal | None:
        text = super().clean(value)
        if not text and not self.required:
            return None
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
    reference = forms.CharField(
        label="Bank reference",
        required=False,
        max_length=400,
        help_text="As on the bank statement (optional).",
    )

    def clean_reference(self) -> str:
        try:
            return parse_reference(self.cleaned_data["reference"])
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None


class CreditNoteActionForm(forms.Form):
    reason = forms.CharField(max_length=250, help_text=REASON_HELP)


class RefundActionForm(forms.Form):
    amount = AmountField(help_text="At most what is owed back on the invoice.")
    paid_on = iso_date_field("The day the refund was paid (YYYY-MM-DD).")
    reason = forms.CharField(max_length=300, help_text="Kept with the refund and mailed.")


class EndCoverActionForm(forms.Form):
    reason = forms.CharField(max_length=200, help_text=REASON_HELP)


def day_in_words(value: date) -> str:
    """``2 Dec 2026``."""
    return f"{value.day} {value:%b %Y}"


def money_in_words(amount: Decimal, currency: str) -> str:
    """``EUR 1,234.50``, as the ``money`` template filter writes it."""
    return f"{currency} {amount:,.2f}"


class RecordPaymentForm(forms.Form):
    """Money received for one invoice: exactly its amount due, on a day between its
    issue and today, with the bank's reference. Checked here so that staff see what is
    wrong before the confirmation; the service checks it all again."""

    amount = AmountField(label="Amount received")
    received_on = forms.DateField(
        label="Received on",
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
        error_messages={"invalid": "Enter a valid date, like 2026-11-26."},
    )
    reference = forms.CharField(
        label="Bank reference",
        required=False,
        max_length=400,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="As on the bank statement, e.g. the transfer's end-to-end ID (optional).",
    )

    def __init__(self, *args: Any, invoice: Invoice, due: Decimal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice, self.due = invoice, due
        currency = invoice.currency
        self.fields["amount"].label = f"Amount received ({currency})"
        self.fields["amount"].help_text = (
            f"Exactly the amount due, {money_in_words(due, currency)}: a payment that differs "
            "is not recorded here (ask finance how to settle it)."
        )
        today = timezone.localdate()
        self.fields["received_on"].help_text = (
            f"The day the money arrived, between {day_in_words(invoice.issued_on)} (the "
            f"invoice's date) and today, {day_in_words(today)}."
        )
        self.fields["received_on"].widget.attrs.update(
            {"min": invoice.issued_on.isoformat(), "max": today.isoformat()}
        )

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount != self.due:
            currency = self.invoice.currency
            raise forms.ValidationError(
                f"Invoice {self.invoice.number} has {money_in_words(self.due, currency)} due, "
                f"not {money_in_words(amount, currency)}."
            )
        return amount

    def clean_received_on(self) -> date:
        received_on: date = self.cleaned_data["received_on"]
        today = timezone.localdate()
        if received_on > today:
            raise forms.ValidationError(
                f"{day_in_words(received_on)} is in the future: money can only have arrived "
                f"by today, {day_in_words(today)}."
            )
        if received_on < self.invoice.issued_on:
            raise forms.ValidationError(
                f"{day_in_words(received_on)} is before the invoice's date, "
                f"{day_in_words(self.invoice.issued_on)}."
            )
        return received_on

    def clean_reference(self) -> str:
        try:
            return parse_reference(self.cleaned_data["reference"])
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None


class CreditNoteForm(forms.Form):
    """A credit note for one invoice: everything not yet credited, or a part of it (net,
    excluding VAT), and the reason."""

    extent = forms.ChoiceField(
        label="What to credit",
        widget=forms.RadioSelect,
        initial="full",
        choices=[("full", "Everything not yet credited"), ("part", "Part of it")],
    )
    net_amount = AmountField(label="Net amount to credit", required=False)
    reason = forms.CharField(
        label="Reason",
        max_length=250,
        help_text=REASON_HELP,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )

    def __init__(self, *args: Any, invoice: Invoice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        self.creditable = creditable_net(invoice)
        left = money_in_words(self.creditable, invoice.currency)
        extent = self.fields["extent"]
        assert isinstance(extent, forms.ChoiceField)
        extent.choices = [
            ("full", f"Everything not yet credited: {left} net, plus its VAT"),
            ("part", "Part of it: the net amount below, plus its VAT"),
        ]
        self.fields["net_amount"].label = f"Net amount to credit ({invoice.currency})"
        self.fields["net_amount"].help_text = f"Only for a part: excluding VAT, at most {left}."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("extent") == "full":
            data["net_amount"] = self.creditable
        elif data.get("extent") == "part" and "net_amount" in data:
            amount = data["net_amount"]
            if amount is None:
                self.add_error("net_amount", "Enter the net amount to credit, like 100.00.")
            elif amount > self.creditable:
                self.add_error(
                    "net_amount",
                    f"At most {money_in_words(self.creditable, self.invoice.currency)} of "
                    f"invoice {self.invoice.number} is left to credit, less than "
                    f"{money_in_words(amount, self.invoice.currency)}.",
                )
        if self.creditable <= 0:
            raise forms.ValidationError(
                f"Invoice {self.invoice.number} is credited in full already."
            )
        return data


class ConfirmationForm(forms.Form):
    """The confirmation page's only field: what staff were shown, signed, so that what is
    recorded is exactly what they confirmed, and with a one-time key (``once``)."""

    token = forms.CharField(widget=forms.HiddenInput)

    #: A confirmation page is good for an hour.
    MAX_AGE = 3600

    def __init__(self, *args: Any, salt: str, invoice: Invoice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.salt, self.invoice = salt, invoice

    @classmethod
    def sign(cls, *, salt: str, invoice: Invoice, **values: Any) -> dict[str, str]:
        """The initial data of a confirmation of ``values`` for ``invoice``."""
        payload = {**values, "invoice": invoice.pk, "once": uuid4().hex}
        return {"token": signing.dumps(payload, salt=salt)}

    def clean_token(self) -> dict[str, Any]:
        try:
            values = signing.loads(self.cleaned_data["token"], salt=self.salt, max_age=self.MAX_AGE)
        except signing.SignatureExpired:
            raise forms.ValidationError(
                "This confirmation is more than an hour old; nothing was recorded. Start again."
            ) from None
        except signing.BadSignature:
            raise forms.ValidationError(
                "This confirmation was altered or is not one of ours; nothing was recorded."
            ) from None
        if not isinstance(values, dict) or values.get("invoice") != self.invoice.pk:
            raise forms.ValidationError(
                f"This confirmation is not for invoice {self.invoice.number}; nothing was recorded."
            )
        values["once"] = UUID(hex=str(values["once"]))
        return values
