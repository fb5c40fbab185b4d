"""A customer's own account and the people of their organisation: changing one's name
and e-mail address, inviting colleagues by e-mail with an expiring single-use link,
revoking an invitation and removing a colleague. Every step is audited.

Who may do what: every customer user edits their own account. An organisation admin
(``User.is_organisation_admin``; the first customer user of an organisation, and
anyone invited as an admin) invites colleagues, revokes pending invitations and removes
colleagues (deactivated, never deleted), but never themselves, so an organisation
always keeps an admin. Staff grant or withdraw the admin flag in the admin site.

An invitation link carries a random token (``secrets.token_urlsafe``); only its SHA-256
is stored, and a link is looked up by that hash. It works once, until
ESCROW_INVITATION_DAYS (7 by default) after it was sent."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Role, User
from records.links import public_url
from records.services.audit import audit_record

TOKEN_BYTES = 32


def invitation_days() -> int:
    return settings.ESCROW_INVITATION_DAYS


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _normalised_email(email: str) -> str:
    email = User.objects.normalize_email((email or "").strip())
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(
            {"email": f"{email[:100]!r} is not an e-mail address."}, code="invalid_email"
        ) from None
    return email


def _email_taken(email: str, *, except_user: User | None = None) -> bool:
    users = User.objects.filter(email__iexact=email)
    if except_user is not None:
        users = users.exclude(pk=except_user.pk)
    return users.exists()


def _require_admin(actor: User) -> None:
    if not (
        actor.is_active
        and actor.role == Role.CUSTOMER
        and actor.is_organisation_admin
        and actor.organisation_id is not None
    ):
        raise PermissionDenied(
            "Only an admin of your organisation can invite or remove colleagues."
        )


def account_update(*, user: User, full_name: str, email: str, current_password: str = "") -> User:
    """Change one's own name and e-mail address. A new e-mail address is the address
    one signs in with and where password-reset links go, so changing it takes the
    current password; it must not belong to anyone else (in any letter case)."""
    full_name = " ".join((full_name or "").split())
    if not full_name:
        raise ValidationError({"full_name": "Give your name."}, code="name_required")
    email = _normalised_email(email)
    changes: dict[str, list[str]] = {}
    if full_name != user.full_name:
        changes["full_name"] = [user.full_name, full_name]
    if email != user.email:
        if not user.check_password(current_password or ""):
            raise ValidationError(
                {
                    "current_password": "To change your e-mail address, give your current "
                    "password; the one given is not right."
                },
                code="wrong_password",
            )
        if _email_taken(email, except_user=user):
            raise ValidationError(
                {"email": f"{email} is already used by another account."}, code="email_taken"
            )
        changes["email"] = [user.email, email]
    if not changes:
        return user
    user.full_name = full_name
    user.email = email
    with transaction.atomic():
        user.save(update_fields=["full_name", "email"])
        audit_record(action="account.update", actor=user, target=user, details=changes)
        if "email" in changes:
            # The old address hears of it: were the change not theirs, they know whom to ask.
            old, new = changes["email"]
            body = (
                f"The e-mail address you sign in to the software escrow service with was "
                f"changed from {old} to {new}. From now on, notices and password-reset links "
                "go to the new address.\n\nIf you did not change it, tell our staff at once."
            )
            transaction.on_commit(
                lambda: send_mail(
                    subject="[Software Escrow] Your sign-in e-mail address was changed",
                    message=body,
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    recipient_list=[old],
                )
            )
    return user


def invitation_send(*, actor: User, email: str, as_admin: bool = False) -> Invitation:
    """An admin invites a colleague: an invitation for ``email`` to join the admin's
    organisation, mailed (once the transaction commits) with a link that works once
    and expires. Inviting an address again replaces its earlier pending invitation."""
    _require_admin(actor)
    organisation = actor.organisation
    assert organisation is not None
    email = _normalised_email(email)
    existing = User.objects.filter(email__iexact=email).first()
    if existing is not None and existing.organisation_id == organisation.pk:
        raise ValidationError(
            {"email": f"{email} is already a user of {organisation.name}."},
            code="already_colleague",
        )
    if existing is not None:
        raise ValidationError(
            {
                "email": f"{email} already has an account with the escrow service, for "
                "another organisation or role; one address has one account. Ask our "
                "staff if this person moved to your organisation."
            },
            code="email_taken",
        )
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = timezone.now()
    with transaction.atomic():
        for earlier in Invitation.objects.select_for_update().filter(
            organisation=organisation,
            email__iexact=email,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        ):
            _revoke(earlier, actor=actor, reason="replaced by a new invitation")
        invitation = Invitation.objects.create(
            organisation=organisation,
            email=email,
            as_admin=as_admin,
            token_sha256=token_sha256(token),
            invited_by=actor,
            created_at=now,
            expires_at=now + timedelta(days=invitation_days()),
        )
        audit_record(
            action="invitation.send",
            actor=actor,
            target=invitation,
            details={"email": email, "as_admin": as_admin},
        )
        link = public_url(reverse("portal:invitation", kwargs={"token": token}))
        expires = invitation.expires_at.astimezone(UTC)
        body = (
            f"{actor.full_name} invites you to the customer portal of the software escrow "
            f"service, as a user of {organisation.name}.\n\n"
            f"To accept, open this link, choose your password and sign in:\n{link}\n\n"
            f"The link works once, until {expires:%-d %b %Y at %H:%M} UTC. If you did not "
            "expect this invitation, ignore this e-mail."
        )
        transaction.on_commit(
            lambda: send_mail(
                subject=f"[Software Escrow] {organisation.name} invites you",
                message=body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[email],
            )
        )
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a link's token names (by its hash), or None for a token that
    names none: garbled, forged, or of a replaced invitation's old link."""
    if not token or len(token) > 200:
        return None
    return (
        Invitation.objects.select_related("organisation", "invited_by")
        .filter(token_sha256=token_sha256(token))
        .first()
    )


def invitation_problem(invitation: Invitation | None) -> str:
    """Why a link cannot be used, in words for the person holding it; "" if it can."""
    if invitation is None:
        return (
            "This invitation link is not valid. Check that you opened the whole link from "
            "the e-mail, or ask your colleague to invite you again."
        )
    state = invitation.state
    if state == Invitation.State.ACCEPTED:
        return "This invitation was already used. Sign in with your e-mail address and password."
    if state == Invitation.State.REVOKED:
        return (
            f"This invitation was withdrawn by {invitation.organisation.name}. "
            "Ask your colleague to invite you again if you still need an account."
        )
    if state == Invitation.State.EXPIRED:
        return (
            "This invitation has expired. Ask your colleague to invite you again: a new "
            f"link works for {invitation_days()} days."
        )
    return ""


def invitation_accept(*, token: str, full_name: str, password: str) -> User:
    """The invitee sets their name and password and becomes a customer user of the
    inviting organisation. The link is used up in the same transaction."""
    full_name = " ".join((full_name or "").split())
    if not full_name:
        raise ValidationError({"full_name": "Give your name."}, code="name_required")
    with transaction.atomic():
        found = invitation_for_token(token)
        invitation = (
            Invitation.objects.select_for_update().get(pk=found.pk) if found is not None else None
        )
        problem = invitation_problem(invitation)
        if problem:
            raise ValidationError(problem, code="invitation_unusable")
        assert invitation is not None
        if _email_taken(invitation.email):
            raise ValidationError(
                f"{invitation.email} already has an account with the escrow service. "
                "Sign in with it, or ask our staff for help.",
                code="email_taken",
            )
        user = User(
            email=invitation.email,
            full_name=full_name,
            role=Role.CUSTOMER,
            organisation=invitation.organisation,
            is_organisation_admin=invitation.as_admin,
        )
        try:
            password_validation.validate_password(password, user)
        except ValidationError as error:
            raise ValidationError({"password1": error.messages}) from None
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(force_insert=True)
        invitation.accepted_at = timezone.now()
        invitation.accepted_user = user
        invitation.save(update_fields=["accepted_at", "accepted_user"])
        audit_record(
            action="invitation.accept",
            actor=user,
            target=invitation,
            details={"email": user.email, "as_admin": invitation.as_admin},
        )
    return user


def _revoke(invitation: Invitation, *, actor: User, reason: str) -> None:
    invitation.revoked_at = timezone.now()
    invitation.revoked_by = actor
    invitation.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        action="invitation.revoke",
        actor=actor,
        target=invitation,
        reason=reason,
        details={"email": invitation.email},
    )


def invitation_revoke(*, actor: User, invitation: Invitation) -> Invitation:
    """An admin withdraws a pending invitation of their organisation: its link stops
    working at once."""
    _require_admin(actor)
    if invitation.organisation_id != actor.organisation_id:
        raise PermissionDenied("That invitation is not of your organisation.")
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.state != Invitation.State.PENDING:
            raise ValidationError(
                f"The invitation of {locked.email} is {locked.state_label.lower()}: there "
                "is nothing to revoke.",
                code="not_pending",
            )
        _revoke(locked, actor=actor, reason="revoked by an organisation admin")
    return locked


def colleague_remove(*, actor: User, colleague: User) -> User:
    """An admin removes a colleague: the account is deactivated (never deleted: the
    audit log names it), so they can no longer sign in. An admin cannot remove
    themselves, nor the organisation's last active admin."""
    _require_admin(actor)
    if colleague.organisation_id != actor.organisation_id or colleague.role != Role.CUSTOMER:
        raise PermissionDenied("That person is not a user of your organisation.")
    if colleague.pk == actor.pk:
        raise ValidationError(
            "You cannot remove yourself. Ask another admin of your organisation, or our staff.",
            code="remove_self",
        )
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=colleague.pk)
        if not locked.is_active:
            raise ValidationError(f"{locked.full_name} was already removed.", code="inactive")
        if locked.is_organisation_admin:
            admins = User.objects.filter(
                organisation=actor.organisation,
                role=Role.CUSTOMER,
                is_active=True,
                is_organisation_admin=True,
            ).exclude(pk=locked.pk)
            if not admins.exists():
                raise ValidationError(
                    f"{locked.full_name} is the organisation's last admin.", code="last_admin"
                )
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        audit_record(
            action="colleague.remove",
            actor=actor,
            target=locked,
            details={"email": locked.email},
        )
    return locked
