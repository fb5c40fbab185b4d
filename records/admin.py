"""The records app's own admin pages: the notification outbox, read-only.

Staff read every notification here, whoever it was for (a customer, the
vendor, the notaries or staff), and see which were not sent and why. Nobody
writes one by hand: notifications are written by the services, in the
transaction of the change they report."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from records.models import Notification


class SentFilter(admin.SimpleListFilter):
    title = "sent"
    parameter_name = "sent"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Sent"), ("no", "Not sent (yet)")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "yes":
            return queryset.filter(sent_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(sent_at__isnull=True)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "audience",
        "organisation",
        "subject",
        "sent_at",
        "attempts",
        "problem",
    )
    list_filter = ("audience", "kind", SentFilter, "organisation")
    list_select_related = ("organisation",)
    search_fields = ("subject", "body", "organisation__name")
    date_hierarchy = "created_at"
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
