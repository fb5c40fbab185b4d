"""Billing's reads, shared by the views that show them."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import F, Q, QuerySet, Sum

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
    """The organisation's invoices and credit notes, newest first, each with what was
    paid, credited, refunded and is still due computed in the same query
    (``Invoice.objects.with_amounts``; ``owed_back`` is what a negative ``due`` owes
    the customer)."""
    return (
        Invoice.objects.with_amounts()
        .annotate(owed_back=-F("due"))
        .filter(customer=organisation)
        .select_related("corrects")
        .order_by("-year", "-sequence")
    )


class InvoiceStatus:
    """What the customer's invoice list calls an invoice, in the order it offers them."""

    OPEN = "open"
    PAID = "paid"
    CREDITED = "credited"
    REFUND_OWED = "refund_owed"
    CREDIT_NOTE = "credit_note"
    CHOICES = (
        (OPEN, "Open"),
        (PAID, "Paid"),
        (CREDITED, "Credited"),
        (REFUND_OWED, "Refund owed"),
        (CREDIT_NOTE, "Credit notes"),
    )


# An invoice whose amount due is nil because a credit note cancelled it, not because it
# was paid (the annotations of ``Invoice.objects.with_amounts``).
_CREDITED = Q(due=0, paid=0, credited__gt=0)
_STATUS: dict[str, Q] = {
    InvoiceStatus.OPEN: Q(kind=Invoice.Kind.INVOICE, due__gt=0),
    InvoiceStatus.PAID: Q(kind=Invoice.Kind.INVOICE, due=0) & ~_CREDITED,
    InvoiceStatus.CREDITED: Q(kind=Invoice.Kind.INVOICE) & _CREDITED,
    InvoiceStatus.REFUND_OWED: Q(kind=Invoice.Kind.INVOICE, due__lt=0),
    InvoiceStatus.CREDIT_NOTE: Q(kind=Invoice.Kind.CREDIT_NOTE),
}


def invoices_matching(
    invoices: QuerySet[Invoice],
    *,
    search: str = "",
    status: str = "",
    year: int | None = None,
    product: Product | None = None,
) -> QuerySet[Invoice]:
    """Invoices (annotated by ``with_amounts``) narrowed to a number, a status of
    ``InvoiceStatus``, a year of issue and the product whose escrow they bill."""
    search = search.strip()
    if search:
        invoices = invoices.filter(number__icontains=search)
    if status:
        invoices = invoices.filter(_STATUS[status])
    if year is not None:
        invoices = invoices.filter(year=year)
    if product is not None:
        invoices = invoices.filter(
            Q(subscription__licence__product=product)
            | Q(corrects__subscription__licence__product=product)
        )
    return invoices


def invoice_years_of(organisation: Organisation) -> list[int]:
    """The years the organisation was invoiced in, newest first."""
    return list(
        Invoice.objects.filter(customer=organisation)
        .order_by("-year")
        .values_list("year", flat=True)
        .distinct()
    )


def products_invoiced_to(organisation: Organisation) -> QuerySet[Product]:
    """The products the organisation's escrow subscriptions were invoiced for."""
    return (
        Product.objects.filter(
            licences__customer=organisation, licences__subscriptions__invoices__isnull=False
        )
        .distinct()
        .order_by("name")
    )


def amounts_due(organisation: Organisation) -> dict[str, Decimal]:
    """What the organisation owes, by currency: one query, whatever the number of invoices."""
    owed = (
        Invoice.objects.with_amounts()
        .filter(Q(due__gt=0), customer=organisation, kind=Invoice.Kind.INVOICE)
        .order_by()
        .values("currency")
        .annotate(owed=Sum("due"))
        .order_by("currency")
    )
    return {row["currency"]: row["owed"] for row in owed}


def unpaid_invoice_of_lapsed_subscription(licence: LicenceAgreement) -> Invoice | None:
    """An invoice of one of the licence's lapsed subscriptions that is still due: paying
    it reactivates that subscription, so the licence is not subscribed afresh meanwhile."""
    return (
        Invoice.objects.with_amounts()
        .filter(
            Q(due__gt=0),
            subscription__licence=licence,
            subscription__state=SubscriptionState.LAPSED,
            kind=Invoice.Kind.INVOICE,
        )
        .order_by("-year", "-sequence")
        .first()
    )
