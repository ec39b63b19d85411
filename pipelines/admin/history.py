"""Admin for what collection did: the poll cycles, read-only."""

from __future__ import annotations

from django.contrib import admin

from pipelines.admin.support import ReadOnly
from pipelines.models import PollCycle


@admin.register(PollCycle)
class PollCycleAdmin(ReadOnly, admin.ModelAdmin):
    list_display = (
        "started_at",
        "kind",
        "account",
        "pipelines",
        "failed",
        "api_calls",
        "metrics_requested",
        "cost_usd",
        "seconds",
    )
    list_filter = ("kind", "account")
    list_select_related = ("account",)
    date_hierarchy = "started_at"
    deletable = True

    @admin.display(description="cost")
    def cost_usd(self, obj):
        return f"${obj.cost:.5f}"

    @admin.display(description="seconds")
    def seconds(self, obj):
        return f"{obj.duration:.2f}" if obj.duration is not None else "running"
