"""Billing's reads, shared by the views that show them."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet

from accounts.models import Organisation, Product
from billing.models import Invoice, LicenceAgreement, Subscription, SubscriptionState


def licences_of(organisation: Organisation) -> QuerySet[LicenceAgreement]:
    """The organisation's licences, with their products."""
    return LicenceAgreement.objects.filter(customer=organisation).select_related("product")


def newest_subscription_by_licence(organisation: Organisation) -> dict[int, Subscription]:
    """For each of the organisation's licences, its most recent subscription."""
    return {
        subscription.licence_id: subscription
        for subscription in Subscription.objects.filter(licence__customer=organisation).order_by(
            "created_at", "id"
        )
    }


def subscriptions_for(organisation: Organisation, product: Product) -> QuerySet[Subscription]:
    """Every subscription the organisation held for the product, newest first."""
    return Subscription.objects.filter(
        licence__customer=organisation, licence__product=product
    ).order_by("-created_at")


def invoices_of(organisation: Organisation) -> QuerySet[Invoice]:
    """The organisation's invoices and credit notes, with their payments."""
    return Invoice.objects.filter(customer=organisation).prefetch_related("payments")


def amounts_due(organisation: Organisation) -> dict[str, Decimal]:
    """What the organisation owes, by currency."""
    due: dict[str, Decimal] = {}
    for invoice in Invoice.objects.filter(customer=organisation, kind=Invoice.Kind.INVOICE):
        outstanding = invoice.amount_due()
        if outstanding > 0:
            due[invoice.currency] = due.get(invoice.currency, Decimal("0.00")) + outstanding
    return due


def unpaid_invoice_of_lapsed_subscription(licence: LicenceAgreement) -> Invoice | None:
    """An invoice of one of the licence's lapsed subscriptions that is still due: paying
    it reactivates that subscription, so the licence is not subscribed afresh meanwhile."""
    for invoice in Invoice.objects.filter(
        subscription__licence=licence,
        subscription__state=SubscriptionState.LAPSED,
        kind=Invoice.Kind.INVOICE,
    ).order_by("-year", "-sequence"):
        if invoice.amount_due() > 0:
            return invoice
    return None
