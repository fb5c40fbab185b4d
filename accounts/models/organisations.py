from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterable
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.vat_numbers import normalise_vat_number


@functools.lru_cache(maxsize=1)
def _known_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    """Only an IANA time zone name the system knows (e.g. Europe/Amsterdam): a name is
    looked up in the list, never opened as a path."""
    if value and value not in _known_time_zones():
        raise ValidationError(
            "%(value)s is not a known time zone; use an IANA name such as Europe/Amsterdam.",
            params={"value": value[:64]},
            code="unknown_time_zone",
        )


class Organisation(models.Model):
    """The vendor that deposits, or a customer company that licenses its products."""

    class Kind(models.TextChoices):
        VENDOR = "vendor", "Vendor"
        CUSTOMER = "customer", "Customer"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 code, e.g. NL.")
    vat_number = models.CharField(max_length=32, blank=True)
    address = models.TextField(blank=True, help_text="Postal address, as printed on invoices.")
    contact_email = models.EmailField()
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text=(
            "IANA time zone, e.g. Europe/Amsterdam. A vendor's contest periods are counted "
            "and shown in it; blank means the default (ESCROW_DEFAULT_VENDOR_TIME_ZONE)."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_time_zone(self) -> str:
        """The organisation's time zone, or the configured default when it set none."""
        return self.time_zone or settings.ESCROW_DEFAULT_VENDOR_TIME_ZONE

    def clean(self) -> None:
        try:
            self.vat_number = normalise_vat_number(self.vat_number, country=self.country)
        except ValueError as error:
            raise ValidationError({"vat_number": str(error)}) from error
        if not re.fullmatch(r"[A-Z]{2}", self.country or ""):
            raise ValidationError({"country": "Use the two-letter ISO country code, e.g. NL."})


class Role(models.TextChoices):
    CUSTOMER = "customer", "Customer user"
    NOTARY = "notary", "Notary"
    STAFF = "staff", "Vendor staff"


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("full_name", "Administrator")
        return self.create_user(email, password, role=Role.STAFF, **fields)


class User(AbstractBaseUser):
    """A person with exactly one role; customer users belong to one customer organisation."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=Role.choices)
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="users",
        limit_choices_to={"kind": Organisation.Kind.CUSTOMER},
        help_text="Required for customer users, empty for notaries and staff.",
    )
    is_active = models.BooleanField(default=True)
    is_organisation_admin = models.BooleanField(
        "organisation admin",
        default=False,
        help_text=(
            "A customer user who may invite colleagues of the organisation and remove them."
        ),
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["full_name"]

    class Meta:
        ordering: ClassVar = ["email"]
        constraints: ClassVar = [
            models.CheckConstraint(
                name="customer_users_have_an_organisation",
                condition=(
                    models.Q(role="customer", organisation__isnull=False)
                    | (~models.Q(role="customer") & models.Q(organisation__isnull=True))
                ),
                violation_error_message=(
                    "Customer users need an organisation; notaries and staff have none."
                ),
            ),
            models.CheckConstraint(
                name="only_customer_users_are_organisation_admins",
                condition=models.Q(is_organisation_admin=False) | models.Q(role="customer"),
                violation_error_message="Only customer users can be organisation admins.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>"

    # Admin access and permissions follow from the role alone; nothing else is
    # stored, so a user can never be half staff. What staff may not do (approve
    # a release, edit the audit log) is refused by the services and the admin.
    @property
    def is_staff(self) -> bool:
        return self.is_active and self.role == Role.STAFF

    @property
    def is_superuser(self) -> bool:
        return self.is_staff

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_staff

    def has_perms(self, perm_list: Iterable[str], obj: object = None) -> bool:
        return self.is_staff

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_staff

    @property
    def is_customer(self) -> bool:
        return self.role == Role.CUSTOMER

    @property
    def is_notary(self) -> bool:
        return self.role == Role.NOTARY
