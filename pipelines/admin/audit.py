"""Admin for the audit trail: who did what to which pipeline, from where, through the UI or the API;
read-only, filterable, searchable, and exportable as CSV by those who may read it."""

from __future__ import annotations

import csv
import json

from django.contrib import admin
from django.http import HttpResponse
from django.utils.html import format_html, format_html_join

from pipelines import clock
from pipelines.admin.support import ReadOnly
from pipelines.models import AuditEntry

#: A value longer than this is cut in the list (the entry's own page shows all of it).
LIST_VALUE_CHARS = 80
CSV_COLUMNS = ("at", "action", "through", "username", "pipeline_name", "remote_addr", "detail")


def compact(value) -> str:
    """One detail value as text: plain values as they are, lists and dicts as compact JSON."""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnly, admin.ModelAdmin):
    """Every audited act, for those with view_auditentry. Nobody adds, changes or deletes a row here,
    superusers included (ReadOnly refuses all three whatever the permissions say): a trail its readers
    could edit would prove nothing."""

    list_display = ("at", "action", "username", "pipeline_name", "facts", "remote_addr", "through")
    list_filter = ("action", "through", "user", "pipeline")
    list_select_related = ("pipeline",)
    search_fields = ("username", "pipeline_name", "remote_addr")
    date_hierarchy = "at"
    fields = ("at", "action", "through", "user", "username", "pipeline", "pipeline_name", "remote_addr", "facts_table")
    actions = ["export_csv"]

    @admin.display(description="detail")
    def facts(self, obj):
        items = []
        for key, value in (obj.detail or {}).items():
            text = compact(value)
            items.append((key, text if len(text) <= LIST_VALUE_CHARS else text[: LIST_VALUE_CHARS - 1] + "…"))
        return format_html_join(", ", "{}: {}", items)

    @admin.display(description="detail")
    def facts_table(self, obj):
        rows = format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", _items(obj))
        return format_html("<table>{}</table>", rows) if rows else "–"

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{clock.now():%Y%m%dT%H%M%SZ}.csv"'
        writer = csv.writer(response)
        writer.writerow(CSV_COLUMNS)
        for e in queryset.order_by("-at", "-pk").iterator(chunk_size=2000):
            row = [e.at.isoformat(), e.action, e.through, e.username, e.pipeline_name, e.remote_addr or ""]
            writer.writerow([cell(v) for v in (*row, compact(e.detail))])
        return response


def cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that starts like a formula gets a leading quote
    (an attempted user name is whatever someone typed at the login form)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _items(obj):
    return [(key, compact(value)) for key, value in (obj.detail or {}).items()]
