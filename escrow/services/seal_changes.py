"""Changing who deposits are sealed for: only with a notary's consent, always announced.

A change is proposed (by staff or a notary), then approved by a notary who
types a fresh code from their authenticator, and only then takes effect; it
can be rejected or withdrawn instead. Every step is an audit row, and a change
that takes effect is announced to every vendor and every subscriber. The first
notary is set up once from the server's command line (``notary_bootstrap``)."""

from __future__ import annotations

import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Organisation, Role, User
from billing.models import SubscriptionState
from escrow.models import NotaryRecipient, SealChangeState, SealRecipientChange
from records.models import Notification
from records.services.audit import audit_record
from records.services.notifications import notification_queue
from records.services.transitions import TransitionRefused, apply_transition

Kind = SealRecipientChange.Kind


class SecondFactorRefused(PermissionDenied):
    """The code from the notary's authenticator was wrong or already used."""


def _active_notaries() -> list[User]:
    return list(User.objects.filter(role=Role.NOTARY, is_active=True))


def seal_change_validate(
    *,
    kind: str,
    public_key: str,
    label: str,
    notary: User | None,
    recipient: NotaryRecipient | None,
) -> tuple[str, str, User | None]:
    """Check a proposal before it is recorded (also run by the admin form); returns
    the key, label and notary the change is about. Raises ``ValidationError``."""
    if kind == Kind.ADD_NOTARY_KEY:
        if notary is None or notary.role != Role.NOTARY or not notary.is_active:
            raise ValidationError({"notary": "A notary's key must name an active notary."})
    elif kind == Kind.ADD_BREAK_GLASS_KEY:
        notary = None
        if NotaryRecipient.objects.filter(kind=NotaryRecipient.Kind.BREAK_GLASS, is_active=True):
            raise ValidationError(
                {"kind": "A break-glass key is active; propose retiring it first."}
            )
    elif kind == Kind.RETIRE_KEY:
        if recipient is None or not recipient.is_active:
            raise ValidationError({"recipient": "Name the active key to retire."})
        return recipient.public_key, recipient.label, recipient.notary
    else:
        raise ValidationError({"kind": f"Unknown change {kind!r}."})
    public_key = public_key.strip()
    if not public_key.startswith("age1"):
        raise ValidationError({"public_key": "Give the age recipient, starting with age1."})
    if NotaryRecipient.objects.filter(public_key=public_key).exists():
        raise ValidationError({"public_key": "This key is already registered."})
    if not label.strip():
        raise ValidationError({"label": "Say where the identity is kept."})
    return public_key, label.strip(), notary


def seal_change_propose(
    *,
    kind: str,
    actor: User,
    reason: str,
    public_key: str = "",
    label: str = "",
    notary: User | None = None,
    recipient: NotaryRecipient | None = None,
) -> SealRecipientChange:
    """Propose adding a notary's key, adding the break-glass key, or retiring a key.

    Staff and notaries may propose; nothing changes until a notary approves."""
    if actor.role not in (Role.STAFF, Role.NOTARY) or not actor.is_active:
        raise PermissionDenied("Only staff and notaries propose changes to the seal recipients.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the change is needed."})
    public_key, label, notary = seal_change_validate(
        kind=kind, public_key=public_key, label=label, notary=notary, recipient=recipient
    )
    change = SealRecipientChange(
        kind=kind,
        public_key=public_key,
        label=label,
        notary=notary,
        recipient=recipient,
        reason=reason.strip(),
        proposed_by=actor,
        sole_notary_may_self_approve=(actor.role == Role.NOTARY and [actor] == _active_notaries()),
    )
    change.full_clean(exclude=["state"])
    with transaction.atomic():
        change.save(force_insert=True)
        audit_record(
            action="sealrecipientchange.propose",
            actor=actor,
            target=change,
            to_state=change.state,
            reason=change.reason,
            details={"kind": kind, "public_key": change.public_key, "label": change.label},
        )
    return change


def check_fresh_code(notary: User, token: str) -> None:
    """A code from the notary's confirmed authenticator that was not used before
    (django-otp refuses a code at or before the last one accepted)."""
    for device in TOTPDevice.objects.devices_for_user(notary, confirmed=True):
        if device.verify_token(token.strip()):
            return
    audit_record(action="notary.second_factor_failed", actor=notary, target=notary)
    raise SecondFactorRefused("That code is wrong or was used already; type a new one.")


def seal_change_approve(
    *, change: SealRecipientChange, notary: User, token: str, reason: str = ""
) -> SealRecipientChange:
    """A notary approves with a fresh code; the change takes effect in the same
    transaction and is announced to every vendor and subscriber."""
    if notary.role != Role.NOTARY:
        raise PermissionDenied("Only a notary approves changes to the seal recipients.")
    # Checked before the transaction, so that a failed attempt stays in the audit chain.
    check_fresh_code(notary, token)
    with transaction.atomic():
        locked = SealRecipientChange.objects.select_for_update().get(pk=change.pk)
        apply_transition(
            locked,
            "approve",
            actor=notary,
            reason=reason,
            notary=notary,
            decision_reason=reason,
            decided_at=timezone.now(),
        )
        _take_effect(locked, notary)
    change.refresh_from_db()
    return change


def _take_effect(change: SealRecipientChange, notary: User) -> None:
    if change.kind == Kind.RETIRE_KEY:
        assert change.recipient is not None
        NotaryRecipient.objects.filter(pk=change.recipient.pk).update(is_active=False)
    else:
        created = NotaryRecipient.objects.create(
            kind=(
                NotaryRecipient.Kind.BREAK_GLASS
                if change.kind == Kind.ADD_BREAK_GLASS_KEY
                else NotaryRecipient.Kind.NOTARY
            ),
            notary=change.notary,
            label=change.label,
            public_key=change.public_key,
        )
        SealRecipientChange.objects.filter(pk=change.pk).update(recipient=created)
    effective = list(
        NotaryRecipient.objects.filter(is_active=True).values_list("kind", "label", "public_key")
    )
    audit_record(
        action="seal_recipients.changed",
        actor=notary,
        target=change,
        reason=change.reason,
        details={"recipients": [list(row) for row in effective]},
    )
    _announce(change, effective)


def _announce(change: SealRecipientChange, effective: list[tuple[str, str, str]]) -> None:
    listing = "\n".join(f"- {label} ({kind}): {key}" for kind, label, key in effective)
    subscribed = Q(
        licences__subscriptions__state__in=[
            SubscriptionState.ACTIVE,
            SubscriptionState.AWAITING_PAYMENT,
        ]
    )
    organisations = Organisation.objects.filter(
        Q(kind=Organisation.Kind.VENDOR) | subscribed
    ).distinct()
    for organisation in organisations:
        notification_queue(
            organisation=organisation,
            kind=Notification.Kind.SEAL_RECIPIENTS_CHANGED,
            subject="Who escrowed source is sealed for has changed",
            body=(
                f"A notary approved this change: {change.get_kind_display()} "
                f"({change.label}, {change.public_key}).\nReason given: {change.reason}\n\n"
                f"From now on every deposit is sealed for exactly these keys:\n{listing}\n\n"
                "If you did not expect this change, contact the notary at once."
            ),
        )


def seal_change_reject(
    *, change: SealRecipientChange, notary: User, reason: str
) -> SealRecipientChange:
    """A notary refuses the change, with a reason; nothing about the recipients changes."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the change is rejected."})
    return apply_transition(
        change,
        "reject",
        actor=notary,
        reason=reason,
        notary=notary,
        decision_reason=reason,
        decided_at=timezone.now(),
    )


def seal_change_withdraw(
    *, change: SealRecipientChange, actor: User, reason: str = "withdrawn by its proposer's side"
) -> SealRecipientChange:
    """Staff or a notary withdraw a change nobody has decided on yet."""
    return apply_transition(
        change,
        "withdraw",
        actor=actor,
        reason=reason,
        decision_reason=reason,
        decided_at=timezone.now(),
    )


def notary_bootstrap(
    *, email: str, full_name: str, public_key: str, label: str
) -> tuple[User, str]:
    """Create the very first notary and its key, from the server's command line.

    Refuses once any notary or any seal key exists: after that, keys change only
    with a notary's approval. Returns the notary and a one-time password, which
    the command prints once for the notary to change at first sign-in."""
    if User.objects.filter(role=Role.NOTARY).exists() or NotaryRecipient.objects.exists():
        raise TransitionRefused(
            "A notary or a seal key exists already: notary_bootstrap runs once only. Further "
            "keys are proposed and approved by a notary in the notary portal."
        )
    password = secrets.token_urlsafe(18)
    with transaction.atomic():
        notary = User.objects.create_user(
            email=email, password=password, full_name=full_name, role=Role.NOTARY
        )
        recipient = NotaryRecipient(
            kind=NotaryRecipient.Kind.NOTARY, notary=notary, label=label, public_key=public_key
        )
        recipient.full_clean()
        recipient.save()
        audit_record(
            action="notary.bootstrap",
            actor_label="server command line",
            target=notary,
            details={"public_key": public_key, "label": label},
        )
    return notary, password


def seal_changes_waiting() -> list[SealRecipientChange]:
    """Proposed changes, oldest first, for the notary portal."""
    return list(
        SealRecipientChange.objects.filter(state=SealChangeState.PROPOSED)
        .select_related("proposed_by", "notary", "recipient")
        .order_by("created_at")
    )
