"""Approving a release: the notary's key opens the deposit's header, a new header is
written for the claimant, and the released file is that header followed by the
deposit's stored payload, untouched. Nothing here reads or re-encrypts the payload,
so the cost does not grow with the size of the deposit.

The notary's identity (and a passphrase that unlocks a stored one) exist only in
memory for the request: they are never saved, logged, or passed to a task."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from escrow.certificates import signature_context
from escrow.models import (
    ClaimRelease,
    ClaimState,
    Deposit,
    DepositState,
    NotaryStoredIdentity,
    ReleaseClaim,
    ReleaseKey,
)
from escrow.services.claim_notices import claim_notices_queue
from escrow.services.claims import (
    _require_reasons,
    claim_approval_problem,
    claim_approve,
    claim_release,
)
from records.models import Notification, StoredFile
from records.pdf import pdf_render
from records.queue import enqueue_on_commit
from records.services.audit import audit_record
from records.services.files import stored_file_put
from records.services.notifications import notification_queue
from records.services.transitions import TransitionRefused
from vault import age
from vault.site_clients import all_sites
from vault.sites import SiteError
from verification.selectors import verification_for


class ApprovalRefused(Exception):
    """The approval cannot go ahead; nothing was changed."""


def deposit_to_release(claim: ReleaseClaim) -> Deposit | None:
    """The most recent acknowledged deposit of the claimed product."""
    return (
        Deposit.objects.filter(product=claim.product, state=DepositState.ACKNOWLEDGED)
        .order_by("-created_at", "-pk")
        .first()
    )


def parse_identities(text: str) -> list[age.SecretIdentity]:
    """Identities from pasted or uploaded text; the error never repeats the text."""
    try:
        identities = age.parse_identity_file(text)
    except age.AgeError:
        raise ApprovalRefused(
            "That is not an age identity file (AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1... "
            "lines)."
        ) from None
    if not identities:
        raise ApprovalRefused("The identity file holds no key.")
    return identities


def notary_identity_store(*, notary: User, identity_text: str, passphrase: str) -> None:
    """Keep the notary's identity encrypted under the notary's passphrase (age scrypt).
    The server keeps no way to open it."""
    if notary.role != Role.NOTARY:
        raise PermissionDenied("Only notaries store an identity.")
    if len(passphrase) < 12:
        raise ValidationError({"passphrase": "Use a passphrase of at least 12 characters."})
    identity = parse_identities(identity_text)[0]
    sealed = io.BytesIO()
    age.encrypt(
        io.BytesIO(identity.to_string().encode()),
        sealed,
        [age.ScryptRecipient(passphrase, work_factor=settings.ESCROW_IDENTITY_SCRYPT_WORK_FACTOR)],
        armor=True,
    )
    with transaction.atomic():
        NotaryStoredIdentity.objects.update_or_create(
            notary=notary,
            defaults={
                "encrypted_identity": sealed.getvalue().decode(),
                "public_key": identity.recipient().to_string(),
            },
        )
        audit_record(
            action="notary.identity_stored",
            actor=notary,
            target=notary,
            details={"public_key": identity.recipient().to_string()},
        )


def notary_identity_unlock(*, notary: User, passphrase: str) -> list[age.SecretIdentity]:
    stored = NotaryStoredIdentity.objects.filter(notary=notary).first()
    if stored is None:
        raise ApprovalRefused("You have no stored identity; upload or paste it instead.")
    plain = io.BytesIO()
    try:
        age.decrypt(
            io.BytesIO(stored.encrypted_identity.encode()),
            plain,
            [age.ScryptIdentity(passphrase, max_work_factor=22)],
        )
    except age.AgeError:
        raise ApprovalRefused("That passphrase does not unlock your stored identity.") from None
    return parse_identities(plain.getvalue().decode())


def _release_recipient(claim: ReleaseClaim) -> tuple[Any, str]:
    """(age recipient, recorded recipient) for the claimant: its own key, or the key
    pair whose identity only the claimant's passphrase opens."""
    key = ReleaseKey.objects.filter(organisation=claim.claimant).first()
    if key is None:
        raise ApprovalRefused(
            f"{claim.claimant.name} has not registered a release key yet; ask it to do so "
            "in its portal (Release key) before approving."
        )
    return age.parse_recipient(key.recipient), key.recipient


def release_approve(
    *, claim: ReleaseClaim, notary: User, reasons: str, identities: list[age.SecretIdentity]
) -> ClaimRelease:
    """Approve the claim and release the most recent acknowledged deposit to the claimant.

    Refuses (``ApprovalRefused``, ``TransitionRefused``) without changing anything when
    the claimant is no longer eligible (its subscription lapsed or ended while the claim
    waited: ``claim_approval_problem``), the identity does not open the deposit, the
    claimant has no release key, or the claim is not under review (a second decision,
    also one racing this one).

    Longer than most because the checks, the re-wrap and the state change must
    share one row lock on the claim, so a racing decision sees all or nothing."""

    reasons = _require_reasons(reasons)
    if notary.role != Role.NOTARY or not notary.is_active:
        raise PermissionDenied("Only a notary approves a release.")
    if claim.state != ClaimState.UNDER_REVIEW:
        raise TransitionRefused(
            f"Claim #{claim.pk} is '{claim.state}'; only a claim under review can be approved."
        )
    problem = claim_approval_problem(claim=claim)
    if problem:
        raise ApprovalRefused(problem)
    deposit = deposit_to_release(claim)
    if deposit is None:
        raise ApprovalRefused(f"{claim.product.name} has no acknowledged deposit to release.")
    recipient, recorded = _release_recipient(claim)
    primary = all_sites()[0]
    try:
        with primary.open(deposit.object_key("sealed")) as sealed:
            header, offset = age.rewrap_header(sealed, identities, [recipient])
    except age.NoIdentityMatchError:
        raise ApprovalRefused(
            "The identity you gave does not open this deposit: it was sealed for "
            f"{', '.join(deposit.sealed_for)}."
        ) from None
    except (age.AgeError, SiteError) as error:
        raise ApprovalRefused(f"The sealed deposit could not be read: {error}") from error
    stored = stored_file_put(
        key=f"releases/{claim.pk}/{uuid.uuid4().hex}.header.age",
        source=header,
        purpose=StoredFile.Purpose.RELEASE,
        content_type="application/octet-stream",
        filename="header.age",
    )
    with transaction.atomic():
        # Lock the claim: of two decisions racing, the second finds it decided.
        locked = ReleaseClaim.objects.select_for_update().get(pk=claim.pk)
        if locked.state != ClaimState.UNDER_REVIEW:
            raise TransitionRefused(
                f"Claim #{claim.pk} was decided meanwhile ({locked.state}); nothing changed."
            )
        # Checked again under the lock: a subscription may have lapsed since the check above.
        problem = claim_approval_problem(claim=locked)
        if problem:
            raise ApprovalRefused(problem)
        claim_approve(claim=locked, notary=notary, reasons=reasons)
        release = ClaimRelease.objects.create(
            claim=locked,
            deposit=deposit,
            header_key=stored.key,
            header_sha256=stored.sha256,
            header_size=stored.size,
            payload_offset=offset,
            released_size=stored.size + (deposit.ciphertext_size or 0) - offset,
            recipient=recorded,
            released_at=timezone.now(),
        )
        claim_release(claim=locked, actor=notary)
        notification_queue(
            organisation=locked.claimant,
            kind=Notification.Kind.RELEASE_READY,
            subject=f"The source of {locked.product.name} is released to you",
            body=(
                f"The notary approved your release claim for {locked.product.name}. Download "
                f"version {deposit.version} in the customer portal (Claims).\n"
            ),
        )
        claim_notices_queue(claim=locked, step="approved", reasons=reasons)
        enqueue_on_commit("escrow.release_letter_render", release_id=release.pk)
    claim.refresh_from_db()
    return release


def released_file_chunks(release: ClaimRelease, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """The released file: the new header, then the deposit's payload as stored."""
    site = all_sites()[0]
    with site.open(release.header_key) as header:
        yield header.read()
    with site.open(release.deposit.object_key("sealed")) as sealed:
        skip = release.payload_offset
        while skip > 0:
            skipped = sealed.read(min(skip, chunk_size))
            if not skipped:
                raise SiteError("the sealed deposit is shorter than its header", site=site.name)
            skip -= len(skipped)
        while chunk := sealed.read(chunk_size):
            yield chunk


def release_letter_render(*, release: ClaimRelease) -> StoredFile:
    """The release letter (PDF): what was released, the manifest, the own-use terms."""
    key = f"releases/{release.claim_id}/release-letter.pdf"
    existing = StoredFile.objects.filter(key=key).first()
    if existing is not None:
        return existing
    deposit = release.deposit
    pdf = pdf_render(
        template="certificates/release_letter.html",
        context={
            "release": release,
            "claim": release.claim,
            "deposit": deposit,
            "manifest": deposit.manifest,
            "completeness": deposit.manifest.get("completeness", {}),
            # Whether the released deposit passed build verification, and when.
            "verification": verification_for(deposit.pk),
            # manifest.json.sig, allowed_signers, the ssh-keygen command, the log proof.
            **signature_context(deposit=deposit),
        },
    )
    stored = stored_file_put(
        key=key,
        source=pdf,
        purpose=StoredFile.Purpose.RELEASE,
        content_type="application/pdf",
        filename=f"release-letter-{deposit.product.slug}-{deposit.version}.pdf",
    )
    ClaimRelease.objects.filter(pk=release.pk).update(letter_key=stored.key)
    return stored
