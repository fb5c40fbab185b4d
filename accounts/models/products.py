from __future__ import annotations

from typing import ClassVar

from django.db import models

from accounts.models.organisations import Organisation


class Product(models.Model):
    """A piece of software whose source the vendor keeps in escrow."""

    vendor = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="products",
        limit_choices_to={"kind": Organisation.Kind.VENDOR},
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True, help_text="Used in the deposit API URL.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name
