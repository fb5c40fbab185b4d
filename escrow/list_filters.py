"""The search and filter forms above the lists of deposits, claims and notifications,
shared by the customer and the notary portals.

Each form reads the request's query string and narrows a list through the
selectors (``escrow.selectors``). A field with a bad value gets an error naming
the problem and is left out; the fields that are valid still apply."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from accounts.models import Organisation, Product
from escrow.models import ClaimState, Deposit, DepositState, ReleaseClaim
from escrow.selectors import claims_matching, deposits_matching, notifications_matching
from records.models import Notification


class DateInput(forms.DateInput):
    input_type = "date"


class ListFilterForm(forms.Form):
    """Dates are days, ``from`` and ``until`` both included."""

    date_fields: tuple[str, str] = ("", "")

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        # An empty query string is an unfiltered list, not a form with errors. The ids
        # are the form's own: a page may hold another form with a field of the same name.
        kwargs.setdefault("auto_id", "filter-%s")
        super().__init__(data if data else None, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = (data.get(name) for name in self.date_fields)
        if start and end and start > end:
            self.add_error(self.date_fields[1], "This day is before the first day: swap the two.")
        return data

    def value(self, name: str) -> Any:
        """The field's cleaned value; empty when it was not given or not valid."""
        if not self.is_bound:
            return None
        self.is_valid()
        return self.cleaned_data.get(name) or None

    @property
    def active(self) -> bool:
        """Whether any filter narrows the list (for "no rows match" against "no rows")."""
        return self.is_bound and any(self.value(name) for name in self.fields)


def _choices(all_label: str, choices: Any) -> list[tuple[str, str]]:
    return [("", all_label), *[(str(value), str(label)) for value, label in choices]]


class DepositFilterForm(ListFilterForm):
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Version or commit",
        help_text="Part of a version or a commit, or the start of the archive's SHA-256.",
    )
    product = forms.ModelChoiceField(
        queryset=Product.objects.none(), required=False, empty_label="All products"
    )
    vendor = forms.ModelChoiceField(
        queryset=Organisation.objects.none(), required=False, empty_label="All vendors"
    )
    state = forms.ChoiceField(required=False)
    received_from = forms.DateField(required=False, label="Received from", widget=DateInput)
    received_until = forms.DateField(required=False, label="Received until", widget=DateInput)

    date_fields = ("received_from", "received_until")

    def __init__(
        self,
        data: Any = None,
        *,
        products: QuerySet[Any] | None = None,
        vendors: QuerySet[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        for name, choices in (("product", products), ("vendor", vendors)):
            if choices is None:
                del self.fields[name]
            else:
                self.fields[name].queryset = choices  # type: ignore[attr-defined]
        # A rejected upload never reaches a list people read.
        state: Any = self.fields["state"]
        state.choices = _choices(
            "All states", [c for c in DepositState.choices if c[0] != DepositState.REJECTED]
        )

    def narrow(self, deposits: QuerySet[Deposit]) -> QuerySet[Deposit]:
        return deposits_matching(
            deposits,
            search=self.value("q") or "",
            product=self.value("product"),
            vendor=self.value("vendor"),
            state=self.value("state") or "",
            received_from=self.value("received_from"),
            received_until=self.value("received_until"),
        )


class ClaimFilterForm(ListFilterForm):
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        help_text="A claim number, or part of the claimant's or the product's name.",
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Open and closed"), ("open", "Open"), ("closed", "Closed")],
        label="Open or closed",
    )
    state = forms.ChoiceField(required=False, choices=_choices("All states", ClaimState.choices))
    product = forms.ModelChoiceField(
        queryset=Product.objects.none(), required=False, empty_label="All products"
    )
    organisation = forms.ModelChoiceField(
        queryset=Organisation.objects.none(),
        required=False,
        empty_label="All organisations",
        help_text="The claimant, or the vendor of the product.",
    )
    filed_from = forms.DateField(required=False, label="Filed from", widget=DateInput)
    filed_until = forms.DateField(required=False, label="Filed until", widget=DateInput)

    date_fields = ("filed_from", "filed_until")

    def __init__(
        self,
        data: Any = None,
        *,
        products: QuerySet[Any],
        organisations: QuerySet[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.fields["product"].queryset = products  # type: ignore[attr-defined]
        if organisations is None:
            del self.fields["organisation"]
        else:
            self.fields["organisation"].queryset = organisations  # type: ignore[attr-defined]

    def narrow(self, claims: QuerySet[ReleaseClaim]) -> QuerySet[ReleaseClaim]:
        return claims_matching(
            claims,
            search=self.value("q") or "",
            status=self.value("status") or "",
            state=self.value("state") or "",
            product=self.value("product"),
            organisation=self.value("organisation"),
            filed_from=self.value("filed_from"),
            filed_until=self.value("filed_until"),
        )


class NotificationFilterForm(ListFilterForm):
    q = forms.CharField(
        required=False, max_length=100, label="Search", help_text="A word of the subject or text."
    )
    kind = forms.ChoiceField(required=False, label="What")
    sent_from = forms.DateField(required=False, label="From", widget=DateInput)
    sent_until = forms.DateField(required=False, label="Until", widget=DateInput)

    date_fields = ("sent_from", "sent_until")

    def __init__(self, data: Any = None, *, kinds: Any, **kwargs: Any) -> None:
        """``kinds``: the kinds of notification the list holds (the others are not offered)."""
        super().__init__(data, **kwargs)
        present = set(kinds)
        kind: Any = self.fields["kind"]
        kind.choices = _choices(
            "Every kind", [c for c in Notification.Kind.choices if c[0] in present]
        )

    def narrow(self, notifications: QuerySet[Notification]) -> QuerySet[Notification]:
        return notifications_matching(
            notifications,
            search=self.value("q") or "",
            kind=self.value("kind") or "",
            sent_from=self.value("sent_from"),
            sent_until=self.value("sent_until"),
        )
