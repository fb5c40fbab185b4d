from __future__ import annotations

from billing.models.licences import Currency, LicenceAgreement
from billing.models.subscriptions import Subscription, SubscriptionState

__all__ = ["Currency", "LicenceAgreement", "Subscription", "SubscriptionState"]
