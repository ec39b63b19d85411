"""Admin for DLQ tasks: the audit history of redrives, deletions and purges, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from pipelines.admin.scoping import PIPELINE_FILTER, PipelineScoped
from pipelines.admin.support import ReadOnly, badge
from pipelines.models import RedriveTask


@admin.register(RedriveTask)
class RedriveTaskAdmin(PipelineScoped, ReadOnly, admin.ModelAdmin):
    """The record of every DLQ action (AWS keeps only the last 10 move tasks); read-only; a team member
    sees those of their team's pipelines."""

    list_display = (
        "task",
        "created_at",
        "pipeline_name",
        "operation",
        "status_badge",
        "engine",
        "dry_run",
        "matched",
        "moved",
        "failed",
        "skipped",
        "requested_by_name",
    )
    list_filter = ("status", "operation", "engine", "dry_run", PIPELINE_FILTER)
    list_select_related = ("pipeline",)
    search_fields = ("pipeline_name", "source_url", "destination_url", "requested_by_name", "filter_value")
    date_hierarchy = "created_at"

    @admin.display(description="task", ordering="pk")
    def task(self, obj):
        if obj.pipeline_id:
            return format_html(
                '<a href="{}">#{}</a>',
                reverse("admin:pipelines_pipeline_dlq_task", args=[obj.pipeline_id, obj.pk]),
                obj.pk,
            )
        return f"#{obj.pk}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status_choice)
