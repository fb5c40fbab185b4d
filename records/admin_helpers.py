"""Admin plumbing shared by the apps: audited saves and transition actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from records.services.audit import audit_record
from records.services.transitions import TransitionRefused


class AuditedAdmin(admin.ModelAdmin):
    """Every add and change made in the admin also leaves an audit-chain entry."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action=f"admin.{obj._meta.model_name}.{'change' if change else 'add'}",
                actor=request.user,  # type: ignore[arg-type]
                target=obj,
                details={"fields": sorted(form.changed_data)},
            )


def transition_action(
    service: Callable[..., Any], *, description: str, object_argument: str
) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], None]:
    """Build an admin action that runs ``service`` on each selected object as the staff user.

    A refused transition is reported by name and leaves that object unchanged;
    the others still go through."""

    def action(
        modeladmin: admin.ModelAdmin,
        request: HttpRequest,
        queryset: QuerySet[models.Model],
    ) -> None:
        done = 0
        for obj in queryset:
            try:
                service(**{object_argument: obj, "actor": request.user})
            except (TransitionRefused, PermissionDenied, ValidationError) as error:
                modeladmin.message_user(request, f"{obj}: {error}", messages.ERROR)
            else:
                done += 1
        if done:
            modeladmin.message_user(request, f"{description}: {done} done.", messages.SUCCESS)

    action.short_description = description  # type: ignore[attr-defined]
    action.__name__ = service.__name__
    return action


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records staff read and never add, change or delete here: what the system wrote
    (the audit log, notifications, backups) or what people wrote elsewhere."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyStateMixin:
    """Records with a state machine are created and moved only by services and
    are never deleted; the admin shows them and offers service-backed actions."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in self.model._meta.fields]  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
