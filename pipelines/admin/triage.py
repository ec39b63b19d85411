"""Admin for DLQ triage scans: who scanned which DLQ when, how far it got, and what it found, read-only.

A scan belongs to a pipeline: seeing it needs the permission to view scans on that pipeline. The
list names the groups' count only; their samples (consumer log lines, message ids) are on the triage
page, behind the permissions that guard them there.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from pipelines import access
from pipelines.admin.scoping import PIPELINE_FILTER, PipelineScoped
from pipelines.admin.support import ReadOnly, badge, error_text
from pipelines.models import TriageScan


@admin.register(TriageScan)
class TriageScanAdmin(PipelineScoped, ReadOnly, admin.ModelAdmin):
    """Every triage scan of every DLQ, newest first, each linked to its page."""

    list_display = (
        "scan",
        "pipeline",
        "created_at",
        "requested_by_name",
        "status_badge",
        "examined_of",
        "complete",
        "group_count",
        "error_short",
    )
    list_filter = ("status", "complete", PIPELINE_FILTER)
    list_select_related = ("pipeline",)
    search_fields = ("pipeline__name", "requested_by_name")
    date_hierarchy = "created_at"
    fields = (
        "pipeline",
        "status",
        "requested_by_name",
        "created_at",
        "started_at",
        "finished_at",
        "cap",
        "depth_at_start",
        "examined",
        "joined",
        "gone",
        "complete",
        "stopped",
        "left",
        "sources",
        "sqs_calls",
        "log_calls",
        "error",
    )

    def has_view_permission(self, request, obj=None):
        # A scan names the pipeline's failures: it needs the view permission on the pipeline too.
        pipeline = obj.pipeline if obj is not None else None
        return access.can(request, access.VIEW, pipeline) and super().has_view_permission(request, obj)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(group_total=Count("groups"))

    @admin.display(description="scan", ordering="pk")
    def scan(self, obj):
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:pipelines_pipeline_dlq_triage_scan", args=[obj.pipeline_id, obj.pk]),
            obj.pk,
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status_choice)

    @admin.display(description="examined", ordering="examined")
    def examined_of(self, obj):
        return f"{obj.examined:,}" if obj.depth_at_start is None else f"{obj.examined:,} of {obj.depth_at_start:,}"

    @admin.display(description="groups", ordering="group_total")
    def group_count(self, obj):
        return obj.group_total

    @admin.display(description="error")
    def error_short(self, obj):
        return error_text(obj.error)
