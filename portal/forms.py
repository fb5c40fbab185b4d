from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from accounts.forms import RoleLoginForm
from accounts.models import Product, Role
from billing.models import Invoice
from billing.selectors import InvoiceStatus, invoices_matching
from escrow.forms import MultipleFileField
from escrow.list_filters import ListFilterForm
from escrow.models import ReleaseCondition, ReleaseKey
from escrow.models.claims import CUSTOMER_CONDITIONS
from escrow.validators import AGE_RECIPIENT_MAX_LENGTH, validate_age_recipient


class SubscribeForm(forms.Form):
    accept_terms = forms.BooleanField(
        required=True,
        label="We accept the escrow terms: a released deposit is for our own use only, to "
        "keep running and maintaining the licensed software, and is never resold or passed on.",
        error_messages={"required": "Accept the escrow terms to subscribe."},
    )
    # The period and total the page showed, so a price that changed before the
    # customer confirmed (a new day began) is shown again rather than invoiced.
    quoted = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)


class CancelSubscriptionForm(forms.Form):
    confirm = forms.BooleanField(
        required=True,
        label="Yes, cancel this escrow subscription as described above.",
        error_messages={"required": "Tick the box to confirm the cancellation."},
    )


class ReleaseKeyForm(forms.Form):
    method = forms.ChoiceField(choices=ReleaseKey.Method.choices, widget=forms.RadioSelect)
    recipient = forms.CharField(
        required=False,
        max_length=AGE_RECIPIENT_MAX_LENGTH,
        help_text="The public key printed by age-keygen, starting with age1 (or age1pq1 for "
        "a hybrid post-quantum key from age-keygen -pq).",
    )
    passphrase = forms.CharField(
        required=False,
        max_length=1000,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters. Nobody can recover it for you: write it down.",
    )
    passphrase_again = forms.CharField(
        required=False, max_length=1000, strip=False, widget=forms.PasswordInput
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("method") == ReleaseKey.Method.PASSPHRASE:
            if len(data.get("passphrase") or "") < 12:
                self.add_error("passphrase", "Use a passphrase of at least 12 characters.")
            elif data.get("passphrase") != data.get("passphrase_again"):
                self.add_error("passphrase_again", "The two passphrases differ.")
        if data.get("method") == ReleaseKey.Method.RECIPIENT:
            recipient = (data.get("recipient") or "").strip()
            if not recipient:
                self.add_error("recipient", "Give the age recipient (age1...) to release to.")
            else:
                try:
                    validate_age_recipient(recipient)
                except forms.ValidationError as error:
                    if error.code == "private_key_given":
                        # The form is shown again: do not put the private key back in it.
                        self.data = {**self.data, "recipient": ""}
                    self.add_error("recipient", error)
                data["recipient"] = recipient
        return data


class ExportForm(forms.Form):
    accept_fee = forms.BooleanField(required=False)


class ClaimForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.none())
    # A voluntary release is the vendor's act (its claim link), never a customer's choice.
    condition = forms.ChoiceField(
        choices=[(c.value, c.label) for c in ReleaseCondition if c in CUSTOMER_CONDITIONS]
    )
    statement = forms.CharField(
        widget=forms.Textarea, max_length=20_000, help_text="What happened, when, and how you know."
    )
    documents = MultipleFileField(
        required=False,
        help_text="Evidence: PDF, PNG or JPEG (a court ruling, a register extract, letters).",
    )

    def __init__(
        self, *args: Any, products: Any, refusals: dict[int, str] | None = None, **kwargs: Any
    ) -> None:
        """``products``: those the organisation licenses; ``refusals``: why it may not
        claim some of them (``claim_eligibility_problem``). Only the others are offered;
        one of those posted anyway is refused with its reason."""
        super().__init__(*args, **kwargs)
        self.refusals = refusals or {}
        field: Any = self.fields["product"]
        field.queryset = products
        field.widget.choices = [
            (value, label)
            for value, label in field.choices
            if value == "" or value.value not in self.refusals
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        product = data.get("product")
        if product is not None and product.pk in self.refusals:
            self.add_error(None, self.refusals[product.pk])
        return data


class InvoiceFilterForm(ListFilterForm):
    q = forms.CharField(
        required=False, max_length=20, label="Number", help_text="All or part of the number."
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "Every status"), *InvoiceStatus.CHOICES]
    )
    year = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    product = forms.ModelChoiceField(
        queryset=Product.objects.none(), required=False, empty_label="All products"
    )

    def __init__(self, data: Any = None, *, years: list[int], products: Any, **kwargs: Any) -> None:
        """``years``: those the organisation was invoiced in; ``products``: those its
        escrow subscriptions were invoiced for."""
        super().__init__(data, **kwargs)
        year: Any = self.fields["year"]
        year.choices = [("", "Every year"), *[(y, str(y)) for y in years]]
        self.fields["product"].queryset = products  # type: ignore[attr-defined]

    def narrow(self, invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
        return invoices_matching(
            invoices,
            search=self.value("q") or "",
            status=self.value("status") or "",
            year=self.value("year"),
            product=self.value("product"),
        )


class EvidenceForm(forms.Form):
    documents = MultipleFileField()


class CustomerLoginForm(RoleLoginForm):
    role = Role.CUSTOMER
