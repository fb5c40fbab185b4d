"""A product's build recipe, set by the vendor's release pipeline with its deposit token.

Staff set the same recipe in the admin (``verification.admin``) through
``verification.services.product_recipe_set``, which saves it. This one lives in escrow
because its actor may be a deposit token, which escrow owns: it checks the token's
product, and the audit names the token (``token:<prefix>``) as it does for the token's
deposits."""

from __future__ import annotations

from accounts.models import Product, User
from escrow.models import DepositToken
from vault.build_recipe import RecipeError, parse_recipe
from verification import services as verification_services
from verification.models import ProductBuildRecipe

__all__ = ["RecipeError", "product_recipe_set"]


def product_recipe_set(
    *, product: Product, text: str, actor: User | DepositToken | None
) -> ProductBuildRecipe:
    """Set (or replace) the product's recipe, used for its deposits whose archive keeps
    no ``escrow.toml``. The text is checked exactly as the archive's file would be, so a
    pipeline learns of a bad recipe now, not at its next deposit: ``RecipeError`` names
    the field and the problem, and nothing is saved."""
    parse_recipe(text, source="product")
    if isinstance(actor, DepositToken) and actor.product_id != product.pk:
        # The view answers 403 before this; a token never touches another product.
        raise PermissionError(f"This token is for {actor.product.slug}, not {product.slug}.")
    user = actor if isinstance(actor, User) else None
    label = f"token:{actor.prefix}" if isinstance(actor, DepositToken) else None
    return verification_services.product_recipe_set(
        product=product, text=text, actor=user, actor_label=label
    )
