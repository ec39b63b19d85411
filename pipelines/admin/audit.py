"""Admin for the audit trail: who peeked at which DLQ, and what each trace lookup received; read-only."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from pipelines.admin.support import ReadOnly
from pipelines.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnly, admin.ModelAdmin):
    """Every audited act, for those with view_auditentry. Nobody adds, changes or deletes a row here,
    superusers included (ReadOnly refuses all three whatever the permissions say): a trail its readers
    could edit would prove nothing."""

    list_display = ("at", "action", "username", "pipeline_name", "facts", "remote_addr", "through")
    list_filter = ("action", "pipeline", "user", "through")
    list_select_related = ("pipeline",)
    search_fields = ("username", "pipeline_name")
    date_hierarchy = "at"
    fields = ("at", "action", "through", "user", "username", "pipeline", "pipeline_name", "remote_addr", "detail")

    @admin.display(description="detail")
    def facts(self, obj):
        items = [(k, v) for k, v in (obj.detail or {}).items() if not isinstance(v, list | dict)]
        return format_html_join(", ", "{}: {}", items)
