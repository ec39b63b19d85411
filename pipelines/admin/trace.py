"""Admin for trace lookups: the history of who looked for which request, read-only; for those who may
read every lookup (global `view_tracelookup`), narrowed to the pipelines they may trace, plus their own."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.utils.html import format_html

from pipelines import access
from pipelines.admin.scoping import PIPELINE_FILTER, PipelineScoped
from pipelines.admin.support import ReadOnly, badge
from pipelines.models import TraceLookup, TraceVerdict
from pipelines.trace.views import TRACE_PERM, rerun_url


@admin.register(TraceLookup)
class TraceLookupAdmin(PipelineScoped, ReadOnly, admin.ModelAdmin):
    """Every per-request trace lookup, read-only, with a link that runs it again."""

    list_display = ("created_at", "ident", "searched", "verdict_badge", "calls_made", "username", "rerun")
    list_filter = ("verdict", PIPELINE_FILTER)
    list_select_related = ("pipeline",)
    search_fields = ("ident", "username", "pipeline_name")
    date_hierarchy = "created_at"
    deletable = True

    # A stored lookup holds what the trace found, consumer log lines and message bodies included: reading
    # one needs the permission to trace, not only the permission to view the model.
    def scope_perm(self, request) -> str:
        return TRACE_PERM

    def get_queryset(self, request):
        qs = admin.ModelAdmin.get_queryset(self, request)
        q = access.owned_q(request.user, TRACE_PERM, self.pipeline_path)
        return qs if q is None else qs.filter(q | Q(user=request.user))

    def holds(self, request, action: str, obj) -> bool:
        if obj is not None and obj.user_id == request.user.pk:
            return access.can(request, TRACE_PERM)
        pipeline = obj.pipeline if obj is not None else None
        if obj is not None and pipeline is None:
            return access.is_global(request.user, TRACE_PERM)
        return access.can(request, TRACE_PERM, pipeline)

    def has_view_permission(self, request, obj=None):
        return access.can(request, TRACE_PERM) and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return access.can(request, TRACE_PERM) and super().has_delete_permission(request, obj)

    @admin.display(description="pipeline", ordering="pipeline_name")
    def searched(self, obj):
        return obj.pipeline_name or "all pipelines"

    @admin.display(description="verdict", ordering="verdict")
    def verdict_badge(self, obj):
        return badge(TraceVerdict(obj.verdict))

    @admin.display(description="re-run")
    def rerun(self, obj):
        return format_html('<a href="{}">re-run</a>', rerun_url(obj))
