from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, LicenceAgreement, Payment, Subscription
from billing.payments import PaymentRefused, payment_record
from billing.services import subscription_cancel
from records.admin_helpers import AuditedAdmin, ReadOnlyStateMixin, transition_action
from records.services.transitions import TransitionRefused


@admin.register(LicenceAgreement)
class LicenceAgreementAdmin(AuditedAdmin):
    list_display = ("customer", "product", "annual_fee", "currency", "start_date")
    list_filter = ("currency", "product")


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyStateMixin, admin.ModelAdmin):
    list_display = ("licence", "state", "fee_rate", "fee", "created_at")
    list_filter = ("state",)
    actions = (
        transition_action(
            subscription_cancel, description="Cancel subscriptions", object_argument="subscription"
        ),
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


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Issued invoices are read-only; payments are recorded by the action below."""

    list_display = (
        "number",
        "kind",
        "customer",
        "purpose",
        "issued_on",
        "due_on",
        "total",
        "currency",
        "settled",
    )
    list_filter = ("kind", "purpose", "vat_treatment")
    search_fields = ("number", "customer__name")
    inlines = (InvoiceLineInline, PaymentInline)
    actions = ("record_payment_of_amount_due",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Invoice._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(boolean=True)
    def settled(self, invoice: Invoice) -> bool:
        return invoice.kind == Invoice.Kind.CREDIT_NOTE or invoice.is_settled

    @admin.action(description="Record payment of the amount due, received today")
    def record_payment_of_amount_due(
        self, request: HttpRequest, queryset: QuerySet[Invoice]
    ) -> None:
        staff: Any = request.user
        for invoice in queryset:
            try:
                payment_record(
                    invoice_number=invoice.number,
                    amount=invoice.amount_due(),
                    received_on=timezone.localdate(),
                    actor=staff,
                )
            except (PaymentRefused, TransitionRefused) as refused:
                self.message_user(request, f"{invoice.number}: {refused}", messages.ERROR)
            else:
                self.message_user(request, f"{invoice.number}: payment recorded.", messages.SUCCESS)
