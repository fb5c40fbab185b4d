from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from billing import admin_agreements  # noqa: F401 (registers the agreement pages)
from billing.admin_forms import (
    ConfirmationForm,
    CreditNoteActionForm,
    CreditNoteForm,
    EndCoverActionForm,
    PaymentActionForm,
    RecordPaymentForm,
    RefundActionForm,
    day_in_words,
    money_in_words,
)
from billing.documents import invoice_document_render
from billing.invoicing import CENT, credit_note_issue, creditable_net
from billing.models import Invoice, InvoiceLine, LicenceAgreement, Payment, Refund, Subscription
from billing.models.invoices import InvoiceQuerySet
from billing.payments import PaymentRefused, payment_record, payment_refusal, refund_record
from billing.services import subscription_cancel_at_period_end, subscription_end_cover_now
from billing.vat import invoice_amounts
from records.admin_helpers import AuditedAdmin, ReadOnlyStateMixin, transition_action
from records.links import stored_file_link
from records.services.transitions import TransitionRefused

REFUSALS = (PaymentRefused, TransitionRefused, PermissionDenied, ValidationError)


def _refusal_text(error: Exception) -> str:
    return "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)


def _errors(form: forms.Form) -> str:
    return " ".join(str(message) for messages_ in form.errors.values() for message in messages_)


def _due(invoice: Invoice) -> Decimal:
    """What ``Invoice.objects.with_amounts()`` computed is due, to the cent (SQLite
    returns 605 for 605.00)."""
    return Decimal(invoice.due).quantize(CENT)  # type: ignore[attr-defined]


def _payment_consequences(invoice: Invoice) -> list[str]:
    """What recording the payment sets off, in words, for the confirmation page."""
    said = [f"{invoice.customer} is e-mailed that the payment was received."]
    if invoice.subscription is not None and invoice.purpose in (
        Invoice.Purpose.SUBSCRIPTION,
        Invoice.Purpose.RENEWAL,
    ):
        said.append(
            "The invoice is then settled, which activates, renews or reactivates its escrow "
            "subscription for the period the invoice names."
        )
    said.append("A payment cannot be changed or deleted once recorded.")
    return said


def _credit_consequences(invoice: Invoice, credit: Decimal) -> list[str]:
    """What issuing the credit note sets off, in words, for the confirmation page."""
    said = [f"{invoice.customer} is e-mailed the credit note; the invoice itself never changes."]
    owed_back = credit - _due(invoice)
    if owed_back > 0:
        said.append(
            f"The invoice was paid: {money_in_words(owed_back, invoice.currency)} will then be "
            "owed back to the customer. Record the refund once it is paid."
        )
    said.append("A credit note cannot be changed or deleted once issued.")
    return said


def _form_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    form_class: type[forms.Form],
    title: str,
    explanation: str,
    apply: Callable[[Any, dict[str, Any]], str],
    initial: dict[str, Any] | None = None,
    one_only: bool = False,
) -> HttpResponse | None:
    """An admin action with a page of its own: it shows ``form_class`` for the selected
    objects, and only a submitted, valid form runs ``apply`` on each of them (whose
    refusals are reported by name while the others still go through)."""
    if one_only and queryset.count() != 1:
        modeladmin.message_user(request, f"{title}: select exactly one.", messages.ERROR)
        return None
    form = form_class(request.POST if "apply" in request.POST else None, initial=initial)
    if "apply" in request.POST and form.is_valid():
        for obj in queryset:
            try:
                done = apply(obj, form.cleaned_data)
            except REFUSALS as error:
                modeladmin.message_user(request, f"{obj}: {_refusal_text(error)}", messages.ERROR)
            else:
                modeladmin.message_user(request, f"{obj}: {done}", messages.SUCCESS)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "explanation": explanation,
        "form": form,
        "objects": list(queryset),
        "action": request.POST.get("action", ""),
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/billing/action_form.html", context)


@admin.register(LicenceAgreement)
class LicenceAgreementAdmin(AuditedAdmin):
    list_display = ("customer", "product", "annual_fee", "currency", "start_date")
    list_filter = ("currency", "product")


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyStateMixin, admin.ModelAdmin):
    list_display = ("licence", "state", "cover", "fee_rate", "fee", "created_at")
    list_filter = ("state",)
    actions = (
        transition_action(
            subscription_cancel_at_period_end,
            description="Cancel at the end of the paid period (no renewal)",
            object_argument="subscription",
        ),
        "end_cover_now",
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # read-only: services move subscriptions, so the page has no Save

    @admin.display(description="Cover")
    def cover(self, subscription: Subscription) -> str:
        if subscription.is_ending:
            return f"cancelled — cover until {subscription.last_covered_day}"
        if subscription.state == "active":
            return f"until {subscription.last_covered_day}, renewed"
        return "—"

    @admin.action(description="End cover now with a credit note for the unused days…")
    def end_cover_now(
        self, request: HttpRequest, queryset: QuerySet[Subscription]
    ) -> HttpResponse | None:
        staff: Any = request.user

        def apply(subscription: Subscription, data: dict[str, Any]) -> str:
            notes = subscription_end_cover_now(
                subscription=subscription, actor=staff, reason=data["reason"]
            )
            credited = ", ".join(f"{note.number} ({note.total})" for note in notes) or "nothing"
            return f"cover ended today; credited: {credited}."

        return _form_action(
            self,
            request,
            queryset,
            form_class=EndCoverActionForm,
            title="End cover now with a credit note",
            explanation="Cover ends today and the subscription is cancelled. Each invoice of a "
            "period that has not ended is credited for the days from today to its end; a paid "
            "one is then owed back (record the refund on the invoice). The customer and staff "
            "are told.",
            apply=apply,
        )


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = ("position", "description", "amount")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    can_delete = False
    fields = ("amount", "received_on", "reference", "recorded_by", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    readonly_fields = ("amount", "paid_on", "reason", "recorded_by", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _party_field(party: str, key: str, label: str) -> Callable[[Any, Invoice], str]:
    """A read-only field showing one detail of the customer or vendor as invoiced."""

    def show(modeladmin: Any, invoice: Invoice) -> str:
        details = invoice.customer_details if party == "customer" else invoice.vendor_details
        value = str(details.get(key, "") or "").strip()
        if key == "address" and value:
            return format_html_join(
                mark_safe("<br>"), "{}", ((line,) for line in value.splitlines())
            )
        return value or "—"

    show.short_description = label  # type: ignore[attr-defined]
    show.__name__ = f"{party}_{key}"
    return show


PARTY_DETAILS = (
    ("name", "Name"),
    ("address", "Postal address"),
    ("country", "Country"),
    ("vat_number", "VAT number"),
    ("email", "E-mail"),
)
PAYMENT_SALT = "billing.admin.record-payment"
CREDIT_NOTE_SALT = "billing.admin.credit-note"


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Issued invoices are read-only: the page shows them without edit controls. From
    an invoice's page staff record a payment or issue a credit note, each on a page of
    its own followed by a confirmation; the bulk actions below still work from the list."""

    list_display = ("number", "customer", "issued_on", "due_on", "amount", "balance", "pdf")
    # A page of 50 without counting the whole table: constant work at any size.
    list_per_page = 50
    show_full_result_count = False
    list_select_related = ("customer", "corrects")
    list_filter = ("kind", "purpose", "vat_treatment")
    search_fields = ("number", "customer__name")
    inlines = (InvoiceLineInline, PaymentInline, RefundInline)
    actions = ("record_payment", "issue_credit_note", "record_refund")
    change_form_template = "admin/billing/invoice/change_form.html"
    readonly_fields = (
        "number",
        "kind",
        "purpose",
        "corrects",
        "subscription",
        "issued_on",
        "due_on",
        "period",
        "net",
        "vat",
        "amount",
        "balance",
        "vat_note",
        "created_at",
        *(f"customer_{key}" for key, _ in PARTY_DETAILS),
        *(f"vendor_{key}" for key, _ in PARTY_DETAILS),
    )
    fieldsets = (
        (
            None,
            {"fields": ("number", "kind", "purpose", "corrects", "subscription", "created_at")},
        ),
        ("Dates", {"fields": ("issued_on", "due_on", "period")}),
        ("Amounts", {"fields": ("net", "vat", "amount", "vat_note", "balance")}),
        ("Customer, as invoiced", {"fields": [f"customer_{key}" for key, _ in PARTY_DETAILS]}),
        ("Vendor, as invoiced", {"fields": [f"vendor_{key}" for key, _ in PARTY_DETAILS]}),
    )

    class Media:
        css: ClassVar = {"all": ("css/staff_admin.css",)}

    customer_name = _party_field("customer", "name", "Name")
    customer_address = _party_field("customer", "address", "Postal address")
    customer_country = _party_field("customer", "country", "Country")
    customer_vat_number = _party_field("customer", "vat_number", "VAT number")
    customer_email = _party_field("customer", "email", "E-mail")
    vendor_name = _party_field("vendor", "name", "Name")
    vendor_address = _party_field("vendor", "address", "Postal address")
    vendor_country = _party_field("vendor", "country", "Country")
    vendor_vat_number = _party_field("vendor", "vat_number", "VAT number")
    vendor_email = _party_field("vendor", "email", "E-mail")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Invoice]:
        """Each invoice with what is paid, credited, refunded and due computed in the
        query: the list costs the same few queries whatever its length."""
        return cast(InvoiceQuerySet, super().get_queryset(request)).with_amounts()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # issued invoices never change; the page is for reading

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        return [
            path(
                "<path:object_id>/record-payment/",
                wrap(self.record_payment_view),
                name="billing_invoice_record_payment",
            ),
            path(
                "<path:object_id>/credit-note/",
                wrap(self.credit_note_view),
                name="billing_invoice_credit_note",
            ),
            path("<path:object_id>/pdf/", wrap(self.pdf_view), name="billing_invoice_pdf"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        invoice = self.get_object(request, object_id)  # None for an id that is no number
        if invoice is not None and invoice.missing_addresses:
            self.message_user(
                request,
                f"{invoice} carries no postal address for the "
                f"{' and the '.join(invoice.missing_addresses)}: an EU invoice needs both. "
                "Add it to the organisation, then credit and re-issue the invoice.",
                messages.WARNING,
            )
        extra = {**(extra_context or {}), "invoice": invoice}
        if invoice is not None and invoice.kind == Invoice.Kind.INVOICE:
            extra["may_pay"] = _due(invoice) > 0 and not payment_refusal(invoice=invoice)
            extra["may_credit"] = creditable_net(invoice) > 0
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="Total", ordering="total")
    def amount(self, invoice: Invoice) -> str:
        return money_in_words(invoice.total, invoice.currency)

    @admin.display(description="Net")
    def net(self, invoice: Invoice) -> str:
        return money_in_words(invoice.net_amount, invoice.currency)

    @admin.display(description="VAT")
    def vat(self, invoice: Invoice) -> str:
        treatment = invoice.get_vat_treatment_display()
        amount = money_in_words(invoice.vat_amount, invoice.currency)
        return f"{amount} ({invoice.vat_label}, {treatment})"

    @admin.display(description="Period")
    def period(self, invoice: Invoice) -> str:
        if invoice.period_start is None or invoice.period_last_day is None:
            return "—"
        return f"{day_in_words(invoice.period_start)} to {day_in_words(invoice.period_last_day)}"

    @admin.display(description="Balance", ordering="due")
    def balance(self, invoice: Invoice) -> str:
        if invoice.kind == Invoice.Kind.CREDIT_NOTE:
            return f"credits {invoice.corrects.number}" if invoice.corrects else "credit note"
        due = _due(invoice)
        if due > 0:
            return f"{money_in_words(due, invoice.currency)} due"
        if due < 0:
            return f"refund owed {money_in_words(-due, invoice.currency)}"
        return format_html('<span class="staff-settled">{}</span>', "✓ settled")

    @admin.display(description="PDF")
    def pdf(self, invoice: Invoice) -> str:
        return format_html(
            '<a href="{}" aria-label="PDF of {}">PDF</a>',
            reverse("admin:billing_invoice_pdf", args=[invoice.pk]),
            invoice,
        )

    def _invoice(self, request: HttpRequest, object_id: str) -> Invoice:
        invoice = self.get_object(request, object_id)  # None for an id that is no number
        if invoice is None or not self.has_view_permission(request, invoice):
            raise Http404("No such invoice.")
        return invoice

    def _back(self, invoice: Invoice) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:billing_invoice_change", args=[invoice.pk]))

    def _page(
        self, request: HttpRequest, invoice: Invoice, template: str, **context: Any
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/billing/invoice/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "invoice": invoice,
                "original": invoice,
                **context,
            },
        )

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A fresh link, valid for at most an hour, to the invoice's stored PDF."""
        invoice = self._invoice(request, object_id)
        staff: Any = request.user
        document = invoice_document_render(invoice=invoice)
        return HttpResponseRedirect(stored_file_link(stored=document, user=staff))

    def record_payment_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Amount, day and bank reference; then a confirmation; only then the payment."""
        invoice = self._invoice(request, object_id)
        due = _due(invoice)
        refusal = payment_refusal(invoice=invoice)
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
            return self._back(invoice)
        if request.method == "POST" and "confirm" in request.POST:
            confirmation = ConfirmationForm(request.POST, salt=PAYMENT_SALT, invoice=invoice)
            if not confirmation.is_valid():
                self.message_user(request, _errors(confirmation), messages.ERROR)
                return self._back(invoice)
            values = confirmation.cleaned_data["token"]
            staff: Any = request.user
            try:
                payment = payment_record(
                    invoice_number=invoice.number,
                    amount=Decimal(values["amount"]),
                    received_on=date.fromisoformat(values["received_on"]),
                    reference=values["reference"],
                    actor=staff,
                    confirmation=values["once"],
                )
            except REFUSALS as error:
                self.message_user(request, _refusal_text(error), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Recorded {money_in_words(payment.amount, invoice.currency)} received on "
                    f"{day_in_words(payment.received_on)} for invoice {invoice.number}.",
                    messages.SUCCESS,
                )
            return self._back(invoice)
        form = RecordPaymentForm(
            request.POST if request.method == "POST" else None,
            invoice=invoice,
            due=due,
            initial={"amount": f"{due:.2f}", "received_on": timezone.localdate()},
        )
        if request.method == "POST" and "review" in request.POST and form.is_valid():
            data = form.cleaned_data
            reference = data["reference"]
            question = (
                f"Record {money_in_words(data['amount'], invoice.currency)} received on "
                f"{day_in_words(data['received_on'])} for invoice {invoice.number}, "
                + (f"reference {reference}?" if reference else "with no bank reference?")
            )
            token = ConfirmationForm.sign(
                salt=PAYMENT_SALT,
                invoice=invoice,
                amount=str(data["amount"]),
                received_on=data["received_on"].isoformat(),
                reference=reference,
            )
            return self._page(
                request,
                invoice,
                "confirm.html",
                title=f"Confirm the payment for invoice {invoice.number}",
                question=question,
                consequences=_payment_consequences(invoice),
                token=token["token"],
                form=form,
                confirm_label="Yes, record the payment",
            )
        return self._page(
            request,
            invoice,
            "money_form.html",
            title=f"Record a payment for invoice {invoice.number}",
            explanation=f"{invoice.customer} owes {money_in_words(due, invoice.currency)} on "
            f"this invoice, due on {day_in_words(invoice.due_on)}. Nothing is recorded until "
            "you confirm on the next page.",
            form=form,
            submit_label="Review the payment",
        )

    def credit_note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """All or part of the invoice, and a reason; then a confirmation; only then the
        credit note (``billing.invoicing.credit_note_issue``)."""
        invoice = self._invoice(request, object_id)
        if invoice.kind != Invoice.Kind.INVOICE or creditable_net(invoice) <= 0:
            self.message_user(request, f"{invoice} has nothing left to credit.", messages.ERROR)
            return self._back(invoice)
        if request.method == "POST" and "confirm" in request.POST:
            confirmation = ConfirmationForm(request.POST, salt=CREDIT_NOTE_SALT, invoice=invoice)
            if not confirmation.is_valid():
                self.message_user(request, _errors(confirmation), messages.ERROR)
                return self._back(invoice)
            values = confirmation.cleaned_data["token"]
            staff: Any = request.user
            try:
                note = credit_note_issue(
                    invoice=invoice,
                    reason=values["reason"],
                    actor=staff,
                    net_amount=Decimal(values["net_amount"]),
                    credited_before=values["credited_before"],
                )
            except REFUSALS as error:
                self.message_user(request, _refusal_text(error), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Credit note {note.number} issued for "
                    f"{money_in_words(note.total, note.currency)} on invoice {invoice.number}.",
                    messages.SUCCESS,
                )
            return self._back(invoice)
        form = CreditNoteForm(request.POST if request.method == "POST" else None, invoice=invoice)
        if request.method == "POST" and "review" in request.POST and form.is_valid():
            data = form.cleaned_data
            net = data["net_amount"]
            figures = invoice_amounts(line_amounts=[-net], rate=invoice.vat_rate)
            question = (
                f"Issue a credit note of {money_in_words(figures.total, invoice.currency)} "
                f"({money_in_words(figures.net, invoice.currency)} net and "
                f"{money_in_words(figures.vat, invoice.currency)} VAT at {invoice.vat_label}) "
                f"on invoice {invoice.number}, for the reason “{data['reason']}”?"
            )
            token = ConfirmationForm.sign(
                salt=CREDIT_NOTE_SALT,
                invoice=invoice,
                net_amount=str(net),
                reason=data["reason"],
                credited_before=invoice.credit_notes.count(),
            )
            return self._page(
                request,
                invoice,
                "confirm.html",
                title=f"Confirm the credit note on invoice {invoice.number}",
                question=question,
                consequences=_credit_consequences(invoice, -figures.total),
                token=token["token"],
                form=form,
                confirm_label="Yes, issue the credit note",
            )
        return self._page(
            request,
            invoice,
            "money_form.html",
            title=f"Issue a credit note on invoice {invoice.number}",
            explanation="A credit note cancels all or part of the invoice with a number of its "
            "own; the invoice itself never changes. Nothing is issued until you confirm on "
            "the next page.",
            form=form,
            submit_label="Review the credit note",
        )

    @admin.action(description="Record a payment…")
    def record_payment(
        self, request: HttpRequest, queryset: QuerySet[Invoice]
    ) -> HttpResponse | None:
        staff: Any = request.user
        invoice = queryset.first()

        def apply(invoice: Invoice, data: dict[str, Any]) -> str:
            payment = payment_record(
                invoice_number=invoice.number,
                amount=data["amount"],
                received_on=data["received_on"],
                reference=data["reference"],
                actor=staff,
            )
            return f"payment of {payment.amount} received on {payment.received_on} recorded."

        return _form_action(
            self,
            request,
            queryset,
            form_class=PaymentActionForm,
            title="Record a payment",
            explanation="Record money received for this invoice: exactly the amount due, on a "
            "day between the invoice's date and today. A paid first or renewal invoice "
            "activates, renews or reactivates its subscription for the invoice's period. "
            "(The invoice's own page has Record payment too, with a confirmation.)",
            apply=apply,
            initial={
                "amount": invoice.amount_due() if invoice else "",
                "received_on": timezone.localdate(),
            },
            one_only=True,
        )

    @admin.action(description="Issue a credit note…")
    def issue_credit_note(
        self, request: HttpRequest, queryset: QuerySet[Invoice]
    ) -> HttpResponse | None:
        staff: Any = request.user

        def apply(invoice: Invoice, data: dict[str, Any]) -> str:
            note = credit_note_issue(invoice=invoice, reason=data["reason"], actor=staff)
            owed = invoice.refund_owed()
            refund = f" {invoice.currency} {owed} is now owed back." if owed else ""
            return f"credit note {note.number} issued for {note.total}.{refund}"

        return _form_action(
            self,
            request,
            queryset,
            form_class=CreditNoteActionForm,
            title="Issue a credit note",
            explanation="Credits what is left of each selected invoice with a credit note of "
            "its own number; the invoice itself never changes. A paid invoice is then owed "
            "back: record the refund once it is paid.",
            apply=apply,
        )

    @admin.action(description="Record a refund…")
    def record_refund(
        self, request: HttpRequest, queryset: QuerySet[Invoice]
    ) -> HttpResponse | None:
        staff: Any = request.user
        invoice = queryset.first()

        def apply(invoice: Invoice, data: dict[str, Any]) -> str:
            refund = refund_record(
                invoice=invoice,
                amount=data["amount"],
                paid_on=data["paid_on"],
                reason=data["reason"],
                actor=staff,
            )
            return f"refund of {refund.amount} paid on {refund.paid_on} recorded."

        return _form_action(
            self,
            request,
            queryset,
            form_class=RefundActionForm,
            title="Record a refund",
            explanation="Record money paid back on an invoice that was paid and then credited: "
            "at most what is owed back.",
            apply=apply,
            initial={
                "amount": invoice.refund_owed() if invoice else "",
                "paid_on": timezone.localdate(),
            },
            one_only=True,
        )
