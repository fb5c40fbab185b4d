from __future__ import annotations

from accounts.models.organisations import Organisation, Role, User
from accounts.models.products import Product

__all__ = ["Organisation", "Product", "Role", "User"]
