"""Who may fire which state transition.

Each function has the signature django-fsm expects for ``permission=``:
``(instance, user) -> bool``. ``user`` is ``None`` when the system itself acts
(a Celery task, the deposit pipeline, a scheduled job); a person never passes
``None``, so "system only" transitions cannot be fired from a view.
"""

from __future__ import annotations

from typing import Any

from accounts.models.organisations import Role


def _has_role(user: Any, role: Role) -> bool:
    return user is not None and user.is_active and user.role == role


def system_only(instance: Any, user: Any) -> bool:
    return user is None


def notary_only(instance: Any, user: Any) -> bool:
    return _has_role(user, Role.NOTARY)


def staff_only(instance: Any, user: Any) -> bool:
    return _has_role(user, Role.STAFF)


def staff_or_system(instance: Any, user: Any) -> bool:
    return user is None or _has_role(user, Role.STAFF)


def staff_or_notary(instance: Any, user: Any) -> bool:
    return _has_role(user, Role.STAFF) or _has_role(user, Role.NOTARY)


def notary_or_system(instance: Any, user: Any) -> bool:
    return user is None or _has_role(user, Role.NOTARY)


def claimant_member(instance: Any, user: Any) -> bool:
    """A customer user of the organisation that filed the claim."""
    return _has_role(user, Role.CUSTOMER) and user.organisation_id == instance.claimant_id


def licence_holder_or_staff(instance: Any, user: Any) -> bool:
    """Staff, or a customer user of the organisation holding the subscribed licence."""
    if _has_role(user, Role.STAFF):
        return True
    return _has_role(user, Role.CUSTOMER) and user.organisation_id == instance.licence.customer_id
