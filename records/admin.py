"""The records app's own admin pages, read-only: the notification outbox and the
audit log.

Staff read every notification here, whoever it was for (a customer, the
vendor, the notaries or staff), and see which were not sent and why. Nobody
writes one by hand: notifications are written by the services, in the
transaction of the change they report.

The audit log holds every change ever made (50,000 entries and more): its list
shows the newest first, a page at a time, at a cost that does not grow with it
(no per-row query, no full count of the table)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

from records.admin_helpers import ReadOnlyAdmin
from records.models import AuditChainHead, AuditEntry, Notification


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
class NotificationAdmin(ReadOnlyAdmin):
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


class _LoggedValueFilter(admin.SimpleListFilter):
    """The values one column of the audit log holds, to filter by. Finding them reads
    the whole log, and they change seldom (a new kind of action in a release), so the
    list of choices is kept for five minutes rather than computed on every page."""

    column = ""
    CHOICES_SECONDS = 300

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = cache.get_or_set(
            f"records.audit-log.{self.column}-choices",
            lambda: list(
                AuditEntry.objects.order_by(self.column)
                .values_list(self.column, flat=True)
                .distinct()
            ),
            self.CHOICES_SECONDS,
        )
        return [(value, value) for value in values or () if value]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(**{self.column: value}) if value else queryset


class ActionFilter(_LoggedValueFilter):
    title = "action"
    parameter_name = column = "action"


class ObjectTypeFilter(_LoggedValueFilter):
    title = "object type"
    parameter_name = column = "object_type"


class AuditLogPaginator(Paginator):
    """Counts the whole log from its chain head, which numbers the entries 1..N without
    a gap (``audit_verify`` proves it), instead of counting every row on every page;
    a filtered or searched list is counted as usual."""

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if isinstance(rows, QuerySet) and not rows.query.where:
            head = AuditChainHead.objects.filter(id=1).values_list("sequence", flat=True).first()
            if head is not None:
                return int(head)
        return Paginator.count.func(self)  # type: ignore[attr-defined]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "sequence",
        "created_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "from_state",
        "to_state",
    )
    list_display_links = ("sequence", "action")
    # By date: today, the past 7 days, this month, this year (no query to draw it; a
    # date hierarchy would scan the whole log twice on every page to find its years).
    list_filter = (ActionFilter, ObjectTypeFilter, ("created_at", admin.DateFieldListFilter))
    # Who (actor_label, e.g. "staff:sam@acme.example"), what, and on which object (its
    # number; its type is a filter).
    search_fields = ("action", "actor_label", "=object_id")
    search_help_text = (
        "Search by action (such as deposit.acknowledge), by who acted (an e-mail address) "
        "or by the number of the object."
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEntry], search_term: str
    ) -> tuple[QuerySet[AuditEntry], bool]:
        """Every word must appear in the action or in who acted, or be the object's
        number. Matched as written and in lower case (actions and e-mail addresses are
        written in lower case), with a case-sensitive LIKE: over 70,000 entries on
        PostgreSQL that is a third of the time of the admin's usual UPPER(...) LIKE."""
        for word in smart_split(search_term):
            word = unescape_string_literal(word) if word[:1] in "\"'" else word
            match = Q(object_id=word)
            for variant in {word, word.lower()}:
                match |= Q(action__contains=variant) | Q(actor_label__contains=variant)
            queryset = queryset.filter(match)
        return queryset, False

    ordering = ("-sequence",)  # what happened last is what staff look for first
    list_per_page = 50
    paginator = AuditLogPaginator
    # The log only grows: counting all of it for "N total" on every page is wasted work.
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [field.name for field in AuditEntry._meta.fields]
