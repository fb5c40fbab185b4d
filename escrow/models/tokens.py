from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models.products import Product


class DepositToken(models.Model):
    """A release pipeline's credential for one product.

    Only a SHA-256 of the secret is stored; the token is shown once when it is
    created. ``allowed_networks`` (CIDR ranges) limits where it may be used
    from; empty means anywhere."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="deposit_tokens")
    label = models.CharField(
        max_length=100, help_text="Which pipeline uses it, e.g. 'GitHub Actions'."
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_sha256 = models.CharField(max_length=64, editable=False)
    allowed_networks = models.JSONField(
        default=list, blank=True, help_text="CIDR ranges, e.g. 203.0.113.0/24; empty: anywhere."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["product", "-created_at"]

    def __str__(self) -> str:
        return f"{self.label} ({self.product.slug}, esc_{self.prefix}_…)"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
