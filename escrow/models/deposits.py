from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from accounts import roles
from accounts.models.products import Product

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
    pipeline = models.JSONField(
        default=dict, blank=True, help_text="What the release pipeline said: commit, build URL."
    )
    manifest = models.JSONField(default=dict, blank=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    manifest_signature = models.TextField(blank=True, help_text="Ed25519, base64, system key.")
    ciphertext_sha256 = models.CharField(max_length=64, blank=True)
    ciphertext_size = models.BigIntegerField(null=True, blank=True)
    sealed_for = models.JSONField(
        default=list, blank=True, help_text="The age recipients the sealed file opens for."
    )
    token = models.ForeignKey(
        "escrow.DepositToken",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deposits",
        help_text="The pipeline token that deposited it.",
    )
    state = FSMField(
        max_length=20, choices=DepositState.choices, default=DepositState.RECEIVED, protected=True
    )
    failed_from = models.CharField(max_length=20, choices=DepositState.choices, blank=True)
    problem = models.TextField(
        blank=True, help_text="Why the deposit was rejected or why its last step failed."
    )
    # Who works on an in-flight deposit, and until when (escrow.services.leases): a
    # lease that is not renewed expires, and the sweeper takes the deposit over.
    lease_owner = models.CharField(
        max_length=200, blank=True, help_text="host:pid:lease of the process working on it."
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    seal_attempt = models.CharField(
        max_length=32,
        blank=True,
        help_text="The sealing attempt whose ciphertext and manifest are in the primary site.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        # The register and the lists read deposits newest first, all or by state.
        indexes: ClassVar = [
            models.Index(fields=["-created_at", "-id"], name="deposit_newest_first"),
            models.Index(fields=["state", "-created_at", "-id"], name="deposit_state_newest"),
        ]
        constraints: ClassVar = [
            # Rejected uploads are kept as records, and the pipeline may try the
            # version again; an accepted version is never deposited twice.
            models.UniqueConstraint(
                fields=["product", "version"],
                condition=~models.Q(state="rejected"),
                name="one_deposit_per_product_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.slug} {self.version}"

    def object_key(self, kind: str, *, attempt: str | None = None) -> str:
        """Where a stored part of this deposit lives in every site.

        The sealed file and manifest are written to the primary site before the
        deposit is ``sealed`` (so any process can store it), under the sealing
        attempt's own folder: an interrupted attempt's objects are never deleted
        (no site deletes), and a new attempt, whose ciphertext differs, must not
        collide with them. Deposits sealed before attempts existed keep the old keys."""
        names = {"sealed": "sealed.age", "manifest": "manifest.json", "signature": "manifest.sig"}
        attempt = self.seal_attempt if attempt is None else attempt
        folder = f"deposits/{self.product.slug}/{self.pk}"
        return f"{folder}/{attempt}/{names[kind]}" if attempt else f"{folder}/{names[kind]}"

    def release_lease(self) -> None:
        self.lease_owner = ""
        self.lease_expires_at = None

    @transition(
        field=state,
        source=DepositState.RECEIVED,
        target=DepositState.VERIFIED,
        permission=roles.system_only,
    )
    def verify(self, *, manifest: dict[str, Any], manifest_sha256: str, signature: str) -> None:
        self.problem = ""
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256
        self.manifest_signature = signature

    @transition(
        field=state,
        source=DepositState.VERIFIED,
        target=DepositState.SEALED,
        permission=roles.system_only,
    )
    def seal(
        self,
        *,
        ciphertext_sha256: str,
        ciphertext_size: int,
        sealed_for: list[str],
        attempt: str = "",
    ) -> None:
        self.seal_attempt = attempt
        self.ciphertext_sha256 = ciphertext_sha256
        self.ciphertext_size = ciphertext_size
        self.sealed_for = sealed_for

    @transition(
        field=state,
        source=DepositState.SEALED,
        target=DepositState.STORED,
        permission=roles.system_only,
    )
    def store(self) -> None:
        self.problem = ""

    @transition(
        field=state,
        source=DepositState.STORED,
        target=DepositState.REPLICATED,
        permission=roles.system_only,
    )
    def replicate(self) -> None:
        self.problem = ""
        self.release_lease()

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
        self.release_lease()

    @transition(
        field=state,
        source=IN_FLIGHT_STATES,
        target=DepositState.FAILED,
        permission=roles.system_only,
    )
    def fail(self, *, problem: str) -> None:
        self.failed_from = self.state
        self.problem = problem
        self.release_lease()

    @transition(
        field=state,
        source=DepositState.FAILED,
        target=RETURN_VALUE(*IN_FLIGHT_STATES),
        permission=roles.staff_or_system,
    )
    def retry(self, *, resume_at: str = "") -> Any:
        # A deposit that failed while checking is checked again from the start: the
        # new upload brings the archive, and its manifest is rebuilt from it.
        resume_at = resume_at or self.failed_from
        self.failed_from = ""
        self.problem = ""
        return resume_at


class DepositCopy(models.Model):
    """One copy of one stored part of a deposit in one storage site.

    ``verified_at`` is when the copy was last read back from the site and matched
    ``sha256``. It is empty for a sealed file the intake has just written in one pass:
    fsynced, with its hash computed as it was written, but not yet read back; the
    replication step reads it back before the deposit can be ``replicated``."""

    class Kind(models.TextChoices):
        SEALED = "sealed", "Sealed archive"
        MANIFEST = "manifest", "Manifest"
        SIGNATURE = "signature", "Manifest signature"

    deposit = models.ForeignKey(Deposit, on_delete=models.PROTECT, related_name="copies")
    site = models.CharField(max_length=40)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=512)
    version_id = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64, validators=[sha256_validator])
    size = models.BigIntegerField()
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["deposit", "site", "kind"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["deposit", "site", "kind"], name="one_copy_per_site"),
        ]

    def __str__(self) -> str:
        return f"{self.deposit} {self.kind} at {self.site}"


class DepositAcknowledgement(models.Model):
    """The notary's receipt: it holds the deposit described by this manifest hash.

    The receipt (who, when, which manifest) is signed with the system key, so
    a copy of it proves the acknowledgement without this database."""

    deposit = models.OneToOneField(
        Deposit, on_delete=models.PROTECT, related_name="acknowledgement"
    )
    notary = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="acknowledgements"
    )
    acknowledged_at = models.DateTimeField()
    manifest_sha256 = models.CharField(max_length=64, validators=[sha256_validator])
    receipt = models.JSONField()
    signature = models.TextField()

    def __str__(self) -> str:
        return f"Acknowledgement of {self.deposit}"
