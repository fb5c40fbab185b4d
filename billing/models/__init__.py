from __future__ import annotations

from billing.models.agreements import AgreementAcceptance, EscrowAgreement
from billing.models.invoices import Invoice, InvoiceCounter, InvoiceLine, Payment, Refund
from billing.models.licences import Currency, LicenceAgreement
from billing.models.subscriptions import Subscription, SubscriptionState

__all__ = [
    "AgreementAcceptance",
    "Currency",
    "EscrowAgreement",
    "Invoice",
    "InvoiceCounter",
    "InvoiceLine",
    "LicenceAgreement",
    "Payment",
    "Refund",
    "Subscription",
    "SubscriptionState",
]
