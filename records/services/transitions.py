"""The one way a state machine moves: checked, saved and audited together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django_fsm import ConcurrentTransition, can_proceed, has_transition_perm

from accounts.models import User
from records.services.audit import audit_record

ModelT = TypeVar("ModelT", bound=models.Model)


class TransitionRefused(Exception):
    """The object is not in a state from which the transition is allowed."""


def _allowed_sources(instance: models.Model, name: str) -> list[str]:
    meta = getattr(type(instance), name)._django_fsm
    return sorted(str(source) for source in meta.transitions)


def apply_transition(
    instance: ModelT,
    name: str,
    *,
    actor: User | None,
    reason: str = "",
    actor_label: str | None = None,
    details: dict[str, Any] | None = None,
    after_commit: Callable[[], None] | None = None,
    **arguments: Any,
) -> ModelT:
    """Fire transition ``name`` on ``instance`` as ``actor`` (``None``: the system).

    Refuses with ``TransitionRefused`` when the current state does not allow it
    and with ``PermissionDenied`` when the actor may not fire it; in both cases
    nothing changes. On success the new state and one audit entry commit
    together, and ``after_commit`` is queued to run once they have."""
    method = getattr(instance, name)
    label = instance._meta.verbose_name
    current = str(instance.state)  # type: ignore[attr-defined]
    if not can_proceed(method):
        allowed = ", ".join(_allowed_sources(instance, name))
        raise TransitionRefused(
            f"Cannot {name.replace('_', ' ')} {label} #{instance.pk}: it is {current!r}; "
            f"that is only possible from: {allowed}."
        )
    if not has_transition_perm(method, cast(Any, actor)):
        raise PermissionDenied(
            f"{actor_label or actor or 'the system'} may not {name} this {label}."
        )
    try:
        with transaction.atomic():
            method(**arguments)
            instance.save()
            audit_record(
                action=f"{instance._meta.model_name}.{name}",
                actor=actor,
                actor_label=actor_label,
                target=instance,
                from_state=current,
                to_state=str(instance.state),  # type: ignore[attr-defined]
                reason=reason,
                details=details,
            )
            if after_commit is not None:
                transaction.on_commit(after_commit)
    except ConcurrentTransition as error:
        instance.refresh_from_db()
        raise TransitionRefused(
            f"{label} #{instance.pk} changed while this request ran; it is now "
            f"{instance.state!r}. Nothing was changed."  # type: ignore[attr-defined]
        ) from error
    except BaseException:
        # The row is untouched (rolled back); make the object in hand say so too.
        instance.refresh_from_db()
        raise
    return instance
