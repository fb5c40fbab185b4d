"""A deposit's build verification and a product's build recipe."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from accounts import roles
from accounts.models.products import Product


class VerificationState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    NO_RECIPE = "no_recipe", "No recipe"
    BUSY = "busy", "Busy"
    INTERRUPTED = "interrupted", "Interrupted"


# The build outcomes the sandbox reports (vault.build_sandbox.BuildResult.outcome).
BUILD_OUTCOMES = [VerificationState.PASSED, VerificationState.FAILED, VerificationState.TIMED_OUT]
# A verification that has not ended: the intake copy may still be on disk.
OPEN_STATES = [VerificationState.PENDING, VerificationState.RUNNING]
FINAL_STATES = [state for state in VerificationState if state not in OPEN_STATES]

BADGE_LABELS = {
    VerificationState.PENDING: "Verification pending",
    VerificationState.RUNNING: "Verifying",
    VerificationState.PASSED: "Build verified",
    VerificationState.FAILED: "Build failed",
    VerificationState.TIMED_OUT: "Build timed out",
    VerificationState.NO_RECIPE: "No build recipe",
    VerificationState.BUSY: "Not verified (busy)",
    VerificationState.INTERRUPTED: "Not verified (interrupted)",
}


class BuildVerification(ConcurrentTransitionMixin, models.Model):
    """Whether one deposit's source builds, in the sandbox on the receiving machine.

    Its own state machine beside the deposit's: it never changes the deposit. It
    refers to the deposit by id only, since escrow sits above this app. While it is
    open, the plaintext intake copy it builds from is on disk under its lease
    (``lease_owner`` / ``lease_until``); the sweeper removes the copy and marks the
    record ``interrupted`` once that lease runs out."""

    deposit_id = models.PositiveBigIntegerField(unique=True)
    # The deposit's product (accounts is below this app): a product's last passing
    # build is found without reading escrow's tables.
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = FSMField(
        max_length=20,
        choices=VerificationState.choices,
        default=VerificationState.PENDING,
        protected=True,
    )
    recipe_source = models.CharField(
        max_length=10,
        blank=True,
        choices=[("archive", "The archive's escrow.toml"), ("product", "The product's recipe")],
    )
    recipe = models.JSONField(default=dict, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    log_tail = models.TextField(blank=True)
    artefacts = models.JSONField(
        default=list, blank=True, help_text="Each expected artefact: path, sha256, size."
    )
    toolchain = models.JSONField(default=dict, blank=True, help_text="Tool -> version found.")
    problem = models.TextField(
        blank=True, help_text="Why it was not verified, or which limit stopped the build."
    )
    sealed_log_key = models.CharField(
        max_length=512, blank=True, help_text="The age-sealed full build log in the primary site."
    )
    sealed_log_sha256 = models.CharField(max_length=64, blank=True)
    addendum = models.JSONField(
        default=dict, blank=True, help_text="The signed summary; names the manifest's hash."
    )
    addendum_signature = models.TextField(blank=True, help_text="Ed25519, base64, system key.")
    addendum_sshsig = models.TextField(blank=True, help_text="SSHSIG, verification namespace.")
    lease_owner = models.CharField(
        max_length=200,
        blank=True,
        help_text="host:pid:token; the token also names the intake copy.",
    )
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        indexes: ClassVar = [
            models.Index(fields=["state", "lease_until"], name="verification_state_lease"),
            models.Index(
                fields=["product", "state", "-finished_at"], name="verification_last_pass"
            ),
        ]

    def __str__(self) -> str:
        return f"build verification of deposit #{self.deposit_id}"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def passed(self) -> bool:
        return self.state == VerificationState.PASSED

    @property
    def badge_label(self) -> str:
        return BADGE_LABELS[VerificationState(self.state)]

    @property
    def lease_token(self) -> str:
        """The last part of ``lease_owner``: it names the intake copy on disk."""
        return self.lease_owner.rsplit(":", 1)[-1] if self.lease_owner else ""

    def release_lease(self) -> None:
        self.lease_until = None

    @transition(
        field=state,
        source=VerificationState.PENDING,
        target=VerificationState.RUNNING,
        permission=roles.system_only,
    )
    def start(self, *, started_at: Any, lease_until: Any) -> None:
        self.started_at = started_at
        self.lease_until = lease_until

    @transition(
        field=state,
        source=VerificationState.RUNNING,
        target=RETURN_VALUE(*BUILD_OUTCOMES),
        permission=roles.system_only,
    )
    def finish(self, *, outcome: str, problem: str = "", **fields: Any) -> Any:
        for name, value in fields.items():
            setattr(self, name, value)
        self.problem = problem
        self.release_lease()
        return outcome

    @transition(
        field=state,
        source=OPEN_STATES,
        target=VerificationState.NO_RECIPE,
        permission=roles.system_only,
    )
    def find_no_recipe(self, *, problem: str, finished_at: Any) -> None:
        self.problem = problem
        self.finished_at = finished_at
        self.release_lease()

    @transition(
        field=state,
        source=VerificationState.PENDING,
        target=VerificationState.BUSY,
        permission=roles.system_only,
    )
    def refuse_busy(self, *, problem: str, finished_at: Any) -> None:
        self.problem = problem
        self.finished_at = finished_at
        self.release_lease()

    @transition(
        field=state,
        source=OPEN_STATES,
        target=VerificationState.INTERRUPTED,
        permission=roles.system_only,
    )
    def interrupt(self, *, problem: str, finished_at: Any) -> None:
        self.problem = problem
        self.finished_at = finished_at
        self.release_lease()


class ProductBuildRecipe(models.Model):
    """The build recipe for a product whose archives keep no ``escrow.toml``.

    The same TOML text as the file; it is checked with ``vault.build_recipe.parse_recipe``
    by the service (and the admin form) that saves it."""

    product = models.OneToOneField(Product, on_delete=models.CASCADE, related_name="build_recipe")
    text = models.TextField(help_text="The escrow.toml text: [build] command, artefacts, ...")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar = ["product__name"]

    def __str__(self) -> str:
        return f"build recipe of {self.product}"
