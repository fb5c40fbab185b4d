from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from billing.admin_forms import (
    CreditNoteActionForm,
    EndCoverActionForm,
    PaymentActionForm,
    RefundActionForm,
)
from billing.invoicing import credit_note_issue
from billing.models import Invoice, InvoiceLine, LicenceAgreement, Payment, Refund, Subscription
from billing.payments import PaymentRefused, payment_record, refund_record
from billing.services import subscription_cancel_at_period_end, subscription_end_cover_now
from records.admin_helpers import AuditedAdmin, ReadOnlyStateMixin, transition_action
from records.services.transitions import TransitionRefused

REFUSALS = (PaymentRefused, TransitionRefused, PermissionDenied, ValidationError)


def _refusal_text(error: Exception) -> str:
    return "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)


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
    readonly_fields = ("amount", "received_on", "recorded_by", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    readonly_fields = ("amount", "paid_on", "reason", "recorded_by", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Issued invoices are read-only; payments, credit notes and refunds are recorded by
    the actions below, each on a page that asks for its figures and reason."""

    list_display = (
        "number",
        "kind",
        "customer",
        "purpose",
        "issued_on",
        "due_on",
        "total",
        "currency",
        "balance",
        "addresses",
    )
    list_filter = ("kind", "purpose", "vat_treatment")
    search_fields = ("number", "customer__name")
    inlines = (InvoiceLineInline, PaymentInline, RefundInline)
    actions = ("record_payment", "issue_credit_note", "record_refund")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Invoice._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        invoice = Invoice.objects.filter(pk=object_id).first()
        if invoice is not None and invoice.missing_addresses:
            self.message_user(
                request,
                f"{invoice} carries no postal address for the "
                f"{' and the '.join(invoice.missing_addresses)}: an EU invoice needs both. "
                "Add it to the organisation, then credit and re-issue the invoice.",
                messages.WARNING,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Balance")
    def balance(self, invoice: Invoice) -> str:
        if invoice.kind == Invoice.Kind.CREDIT_NOTE:
            return f"credits {invoice.corrects.number}" if invoice.corrects else "credit note"
        due = invoice.amount_due()
        if due > 0:
            return f"{due} due"
        if due < 0:
            return f"refund owed {-due}"
        return "settled"

    @admin.display(boolean=True, description="Addresses")
    def addresses(self, invoice: Invoice) -> bool:
        return not invoice.missing_addresses

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
            "activates, renews or reactivates its subscription for the invoice's period.",
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
