from __future__ import annotations

from typing import Any, ClassVar

from django.core.validators import RegexValidator
from django.db import models
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from escrow import roles
from escrow.models.products import Product

version_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$",
    "A version is 1-100 characters: letters, digits, '.', '_', '+' and '-', "
    "starting with a letter or digit.",
)
sha256_validator = RegexValidator(r"^[0-9a-f]{64}$", "A SHA-256 is 64 lower-case hex digits.")


class DepositState(models.TextChoices):
    RECEIVED = "received", "Received"
    VERIFIED = "verified", "Verified"
    SEALED = "sealed", "Sealed"
    STORED = "stored", "Stored"
    REPLICATED = "replicated", "Replicated"
    ACKNOWLEDGED = "acknowledged", "Acknowledged by the notary"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


# The pipeline steps an infrastructure failure can interrupt; `retry` returns
# the deposit to the step it failed in, so nothing already stored is redone.
IN_FLIGHT_STATES = [
    DepositState.RECEIVED,
    DepositState.VERIFIED,
    DepositState.SEALED,
    DepositState.STORED,
]


class Deposit(ConcurrentTransitionMixin, models.Model):
    """One build's source, deposited by the release pipeline. A deposited version never changes."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="deposits")
    version = models.CharField(max_length=100, validators=[version_validator])
    archive_sha256 = models.CharField(max_length=64, validators=[sha256_validator])
    archive_size = models.BigIntegerField(null=True, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    state = FSMField(
        max_length=20, choices=DepositState.choices, default=DepositState.RECEIVED, protected=True
    )
    failed_from = models.CharField(max_length=20, choices=DepositState.choices, blank=True)
    problem = models.TextField(
        blank=True, help_text="Why the deposit was rejected or why its last step failed."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["product", "version"], name="one_deposit_per_product_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.slug} {self.version}"

    @transition(
        field=state,
        source=DepositState.RECEIVED,
        target=DepositState.VERIFIED,
        permission=roles.system_only,
    )
    def verify(self) -> None:
        self.problem = ""

    @transition(
        field=state,
        source=DepositState.VERIFIED,
        target=DepositState.SEALED,
        permission=roles.system_only,
    )
    def seal(self) -> None:
        pass

    @transition(
        field=state,
        source=DepositState.SEALED,
        target=DepositState.STORED,
        permission=roles.system_only,
    )
    def store(self) -> None:
        pass

    @transition(
        field=state,
        source=DepositState.STORED,
        target=DepositState.REPLICATED,
        permission=roles.system_only,
    )
    def replicate(self) -> None:
        pass

    @transition(
        field=state,
        source=DepositState.REPLICATED,
        target=DepositState.ACKNOWLEDGED,
        permission=roles.notary_only,
    )
    def acknowledge(self) -> None:
        pass

    @transition(
        field=state,
        source=DepositState.RECEIVED,
        target=DepositState.REJECTED,
        permission=roles.system_only,
    )
    def reject(self, *, problem: str) -> None:
        self.problem = problem

    @transition(
        field=state,
        source=IN_FLIGHT_STATES,
        target=DepositState.FAILED,
        permission=roles.system_only,
    )
    def fail(self, *, problem: str) -> None:
        self.failed_from = self.state
        self.problem = problem

    @transition(
        field=state,
        source=DepositState.FAILED,
        target=RETURN_VALUE(*IN_FLIGHT_STATES),
        permission=roles.staff_or_system,
    )
    def retry(self) -> Any:
        resume_at = self.failed_from
        self.failed_from = ""
        return resume_at
