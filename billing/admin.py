from __future__ import annotations

from django.contrib import admin

from billing.models import LicenceAgreement, Subscription
from billing.services import subscription_cancel
from escrow.admin import ReadOnlyStateMixin
from escrow.admin_helpers import AuditedAdmin, transition_action


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
