from __future__ import annotations

from accounts.models.invitations import Invitation
from accounts.models.organisations import Organisation, Role, User
from accounts.models.products import Product

__all__ = ["Invitation", "Organisation", "Product", "Role", "User"]
