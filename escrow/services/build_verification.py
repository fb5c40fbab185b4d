"""Does the deposit build? The build verification of one stored deposit, on the machine
that received it.

The plaintext is only in the intake copy the receiving process kept
(``deposit-<id>.<token>.verify``, see escrow.services.intake), so this runs there
(its task goes to the machine's own queue, verification.routing). Under the
verification's own lease: wait for one of ``ESCROW_VERIFY_SLOTS``, unpack the copy into
a scratch folder beside it, find the recipe (the archive's ``escrow.toml``, else the
product's), build in the sandbox (vault.build_sandbox), then record the outcome, the
full log sealed with age for the notaries and stored beside the deposit, and a signed
addendum that names the deposit's manifest hash. The copy and the scratch folder are
removed at the end, whatever happens; a process that dies leaves them to the sweeper,
which records the verification ``interrupted``. The deposit's own states are never
touched. A failed or timed-out build is mailed to the vendor's contacts."""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import mail_admins, send_mail
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organisation, Role
from escrow.models import Deposit
from escrow.services.deposits import lease_owner_new
from escrow.services.recipients import seal_recipients
from vault import age, sshsig
from vault.build_recipe import RECIPE_FILE, Recipe, RecipeError, parse_recipe
from vault.build_sandbox import (
    BuildResult,
    SandboxError,
    SandboxLimits,
    UnpackError,
    remove_tree,
    run_build,
    unpack_source,
)
from vault.keys import system_signing_key
from vault.manifest import canonical_json, sign_manifest
from vault.site_clients import all_sites
from vault.sites import SiteError
from verification.models import BuildVerification, ProductBuildRecipe, VerificationState
from verification.services import (
    NO_RECIPE_HINT,
    verification_copy_path,
    verification_finish,
    verification_interrupt,
    verification_lease_renew,
    verification_no_recipe,
    verification_start,
)

logger = logging.getLogger(__name__)
ADDENDUM_KIND = "escrow-build-verification/v1"
#: How often a verification waiting for a free slot looks again.
SLOT_POLL_SECONDS = 1.0


class _Renewer(threading.Thread):
    """Renews the verification's lease every third of its length while the build runs,
    so the sweeper never takes a verification that is still building."""

    def __init__(self, verification: BuildVerification) -> None:
        super().__init__(name=f"verify-lease-{verification.pk}", daemon=True)
        self.verification = BuildVerification.objects.get(pk=verification.pk)
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.ESCROW_VERIFY_LEASE_SECONDS / 3):
                if not verification_lease_renew(verification=self.verification):
                    return
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


def deposit_build_verify(*, verification: BuildVerification) -> BuildVerification:
    """Build a stored deposit from its intake copy and record the verification.

    Returns the record as it ends: ``passed``, ``failed``, ``timed_out``,
    ``no_recipe``, or ``interrupted`` (the copy was gone, the sandbox cannot run here,
    or something broke: the reason is on the record, and staff are mailed). A record
    that is no longer ``pending`` (another worker took it, the sweeper interrupted it)
    is left as it is, and so is its copy."""
    owner = lease_owner_new()
    copy = verification_copy_path(verification.deposit_id, verification.lease_token)
    scratch = copy.with_suffix(".scratch")
    if not _take_slot(verification, owner):
        return verification
    try:
        return _verify(verification, copy, scratch)
    except Exception as error:
        verification.refresh_from_db()
        if verification.state == VerificationState.RUNNING:
            verification_interrupt(
                verification=verification,
                problem=f"not verified (interrupted): {type(error).__name__}: {error}",
            )
        raise
    finally:
        copy.unlink(missing_ok=True)
        remove_tree(scratch)


def _take_slot(verification: BuildVerification, owner: str) -> bool:
    """Wait, under a renewed lease, until this machine has a free build slot; False when
    the record is no longer pending (nothing to do here)."""
    while True:
        if verification_start(
            verification=verification, owner=owner, seconds=settings.ESCROW_VERIFY_LEASE_SECONDS
        ):
            return True
        verification.refresh_from_db()
        if verification.state != VerificationState.PENDING:
            return False
        left = (verification.lease_until or timezone.now()) - timezone.now()
        renew = left.total_seconds() < settings.ESCROW_VERIFY_LEASE_SECONDS * 2 / 3
        if renew and not verification_lease_renew(verification=verification):
            return False  # its lease ran out: the sweeper interrupts it
        time.sleep(SLOT_POLL_SECONDS)


def _verify(verification: BuildVerification, copy: Path, scratch: Path) -> BuildVerification:
    deposit = Deposit.objects.select_related("product__vendor").get(pk=verification.deposit_id)
    if not copy.is_file():
        return verification_interrupt(
            verification=verification,
            problem=(
                "not verified (interrupted): the intake copy of the source was gone when "
                "the build was to start."
            ),
        )
    # A deposit with no recipe anywhere never gets here: the intake recorded it
    # no_recipe from its inspection's member names (verification_open).
    scratch.mkdir(mode=0o700)
    try:
        source_root = unpack_source(copy, scratch / "src")
    except UnpackError as error:
        # Inspection accepted the archive, but the sandbox's stricter unpacking did not:
        # nothing was built, and the record says why instead of failing the task.
        return verification_interrupt(
            verification=verification,
            problem=f"not verified (interrupted): the source could not be unpacked: {error}",
        )
    try:
        recipe = _recipe(source_root, deposit)
    except RecipeError as error:
        return verification_no_recipe(verification=verification, problem=str(error))
    if recipe is None:
        return verification_no_recipe(verification=verification, problem=NO_RECIPE_HINT)
    renewer = _Renewer(verification)
    renewer.start()
    try:
        result = run_build(source_root, recipe, SandboxLimits.from_settings(recipe))
    except SandboxError as error:
        problem = f"not verified (interrupted): the build sandbox cannot run here: {error}"
        transaction.on_commit(lambda: mail_admins("Build verification cannot run", problem))
        return verification_interrupt(verification=verification, problem=problem)
    finally:
        renewer.stop()
    return _record(verification, deposit, recipe, result)


def _recipe(source_root: Path, deposit: Deposit) -> Recipe | None:
    """The archive's escrow.toml, else the product's recipe, else None. A recipe that
    is there but unusable raises RecipeError naming where it came from."""
    path = source_root / RECIPE_FILE
    if path.is_file() and not path.is_symlink():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RecipeError(
                f"No usable build recipe: the archive's {RECIPE_FILE} is not UTF-8 text."
            ) from None
        try:
            return parse_recipe(text, source="archive")
        except RecipeError as error:
            raise RecipeError(
                f"No usable build recipe: the archive's {RECIPE_FILE}: {error}"
            ) from None
    product_recipe = ProductBuildRecipe.objects.filter(product=deposit.product).first()
    if product_recipe is None:
        return None
    try:
        return parse_recipe(product_recipe.text, source="product")
    except RecipeError as error:
        raise RecipeError(f"No usable build recipe: the product's recipe: {error}") from None


def _record(
    verification: BuildVerification, deposit: Deposit, recipe: Recipe, result: BuildResult
) -> BuildVerification:
    """Seal and store the full log, sign the addendum and record the outcome."""
    finished_at = timezone.now()
    problems = []
    if result.limit_hit:
        problems.append(f"stopped by the sandbox's {result.limit_hit} limit")
    if result.missing_artefacts:
        problems.append("missing artefacts: " + ", ".join(result.missing_artefacts))
    if not result.toolchain.ok:
        problems.extend(result.toolchain.problems)
    log_key, log_sha256 = "", ""
    try:
        log_key, log_sha256 = _store_sealed_log(deposit, result.log)
    except SiteError as error:
        problems.append(f"the sealed build log could not be stored: {error}")
        logger.error("deposit #%s: storing the sealed build log failed: %s", deposit.pk, error)
    artefacts = [artefact.as_dict() for artefact in result.artefacts]
    toolchain = result.toolchain.as_dict()
    addendum: dict[str, Any] = {
        "kind": ADDENDUM_KIND,
        "deposit": {
            "id": deposit.pk,
            "product": deposit.product.slug,
            "version": deposit.version,
            "manifest_sha256": deposit.manifest_sha256,
        },
        "outcome": result.outcome,
        "exit_code": result.exit_code,
        "duration_seconds": round(result.duration_seconds, 3),
        "finished_at": finished_at.isoformat(),
        "recipe": recipe.as_dict(),
        "artefacts": artefacts,
        "missing_artefacts": list(result.missing_artefacts),
        "limit_hit": result.limit_hit,
        "toolchain": toolchain["found"],
        "log": {
            "sha256": hashlib.sha256(result.log).hexdigest(),
            "size": len(result.log),
            "sealed_key": log_key,
            "sealed_sha256": log_sha256,
        },
    }
    key = system_signing_key()
    with transaction.atomic():
        record = verification_finish(
            verification=verification,
            outcome=result.outcome,
            problem="; ".join(problems),
            recipe_source=recipe.source,
            recipe=recipe.as_dict(),
            exit_code=result.exit_code,
            finished_at=finished_at,
            duration_seconds=result.duration_seconds,
            log_tail=result.log_tail,
            artefacts=artefacts,
            toolchain=toolchain,
            sealed_log_key=log_key,
            sealed_log_sha256=log_sha256,
            addendum=addendum,
            addendum_signature=sign_manifest(addendum, key),
            addendum_sshsig=sshsig.sign(
                canonical_json(addendum), key, sshsig.namespace("verification")
            ),
        )
        if record.state in (VerificationState.FAILED, VerificationState.TIMED_OUT):
            _tell_vendor(deposit, record)
    return record


def build_log_key(deposit: Deposit) -> str:
    """Where a deposit's sealed build log is stored: beside its sealed file."""
    sealed_key = deposit.object_key("sealed")
    return f"{sealed_key.rsplit('/', 1)[0]}/build-log.age"


def _store_sealed_log(deposit: Deposit, log: bytes) -> tuple[str, str]:
    """Seal the full build log for the deposit's recipients and put it in the primary
    site beside the deposit; returns its key and the sealed file's SHA-256."""
    sealed = io.BytesIO()
    age.encrypt(io.BytesIO(log), sealed, seal_recipients())
    data = sealed.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()
    key = build_log_key(deposit)
    all_sites()[0].put(key, io.BytesIO(data), sha256=sha256, size=len(data))
    return key, sha256


def vendor_contacts(organisation: Organisation) -> list[str]:
    """The vendor's contact address and its active users, as its notices are addressed
    (records.services.notifications.notification_recipients)."""
    users = organisation.users.filter(is_active=True, role=Role.CUSTOMER)
    addresses = [organisation.contact_email, *users.values_list("email", flat=True)]
    return sorted({address for address in addresses if address})


def _tell_vendor(deposit: Deposit, record: BuildVerification) -> None:
    """Mail the vendor's contacts that the deposit did not build, with the log's tail,
    once the outcome commits."""
    product = deposit.product
    recipients = vendor_contacts(product.vendor)
    if not recipients:
        return
    words = record.badge_label.lower()
    subject = f"[Software Escrow] {product.name} {deposit.version}: {words}"
    body = (
        f"The escrow service rebuilt deposit #{deposit.pk} ({product.name} "
        f"{deposit.version}) in its sandbox, without network access, and the build did "
        f"not pass: {words}"
        + (f" (exit code {record.exit_code})" if record.exit_code is not None else "")
        + ".\n"
        + (f"{record.problem}\n" if record.problem else "")
        + "\nThe last lines of the build log:\n\n"
        + record.log_tail
        + "\n\nThe deposit itself is stored and safe; only the build check failed. "
        "docs/verification.md explains the recipe (escrow.toml) and the sandbox.\n"
    )
    transaction.on_commit(
        lambda: send_mail(
            subject=subject,
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
            fail_silently=True,
        )
    )
