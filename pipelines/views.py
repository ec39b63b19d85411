"""Operator views on the admin site: the overview (its landing page) and the pipeline dashboard."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from . import collect, dashboard, incident_views
from .insights import insights_for
from .models import AwsAccount, Health, Pipeline, now

REFRESH_SECONDS = 30
#: What an overview row shows: loading only these keeps 500 rows cheap.
OVERVIEW_FIELDS = (
    "name",
    "account__name",
    "enabled",
    "last_sync_at",
    "poll_interval",
    "health",
    "health_reasons",
    "drain_rate",
    "time_to_loss",
    "forecast_minutes",
    "recent_errors",
    "recent_throttles",
    "recent_invocations",
    "sparkline",
    "backlog",
    "backlog_threshold",
    "in_flight",
    "dlq_url",
    "dlq_depth",
    "oldest_age",
    "retention_period",
    "oldest_age_sla",
    "is_fifo",
    "function_name",
    "last_error",
    "metrics_error",
)


def _require_view(request) -> None:
    if not request.user.has_perm("pipelines.view_pipeline"):
        raise PermissionDenied


def account_filter(value: str) -> int | None:
    """The overview's ?account= as an id, or None (all accounts) for anything that is not one."""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def _overview_context(request) -> dict:
    _require_view(request)
    at = now()
    pipes = Pipeline.objects.select_related("account").only(*OVERVIEW_FIELDS).order_by("name")
    account = request.GET.get("account", "")
    account_id = account_filter(account)
    if account_id is not None:
        pipes = pipes.filter(account_id=account_id)
    rows = dashboard.overview(list(pipes), at)
    # One query for every unresolved incident (of the chosen account), mapped to rows below.
    incidents = incident_views.unresolved_for(request.user, account_id)
    counts = dict.fromkeys(Health, 0)
    for r in rows:
        counts[r.health] += 1
    health = request.GET.get("health", "")
    if health in Health.values:
        rows = [r for r in rows if r.health == health]
    # reverse() once: the row URL differs only by id.
    url = reverse("admin:pipelines_pipeline_dashboard", args=[0]).replace("/0/", "/{pk}/")
    by_pipeline = incident_views.counts_by_pipeline(incidents) if incidents is not None else None
    rows_html = dashboard.render_rows(rows, url, at, by_pipeline, incident_views.changelist_url())
    return {
        "rows": rows,
        "rows_html": rows_html,
        "at": at,
        "unresolved_incidents": incidents,
        "health_counts": [(h, counts[h]) for h in Health if counts[h]],
        "selected_health": health,
        "selected_account": account,
        "refresh_seconds": REFRESH_SECONDS,
    }


def overview(request, site, extra_context=None):
    """Every pipeline, worst first: health, backlog, DLQ, age vs SLA and retention, drain, errors."""
    context = {
        **site.each_context(request),
        "title": "Pipelines",
        **_overview_context(request),
        "accounts": AwsAccount.objects.order_by("name"),
        **(extra_context or {}),
    }
    context["incidents"] = incident_views.overview_strip(
        request, context["unresolved_incidents"], request.get_full_path()
    )
    request.current_app = site.name
    return TemplateResponse(request, "admin/pipelines/overview.html", context)


def overview_rows(request):
    """The overview's table body alone, for its periodic refresh."""
    return TemplateResponse(request, "admin/pipelines/_overview_rows.html", _overview_context(request))


def pipeline_dashboard(request, pipeline_id: int, model_admin):
    _require_view(request)
    pipeline = get_object_or_404(Pipeline.objects.select_related("account"), pk=pipeline_id)
    at = now()
    health, reasons = pipeline.current_health(at)
    trend = pipeline.trend
    cost = collect.monthly_cost(pipeline, pipeline.account.unsupported_statistics)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Pipeline._meta,
        "title": pipeline.name,
        "pipeline": pipeline,
        "health": health,
        "reasons": reasons,
        "trend": trend,
        "ranges": list(dashboard.RANGES),
        "range": request.GET.get("range", "24h"),
        "series_url": reverse("admin:pipelines_pipeline_series", args=[pipeline.pk]),
        "cost": cost,
        "config": _config(pipeline),
        "insights": insights_for(pipeline),
        "can_change": model_admin.has_change_permission(request, pipeline),
        "can_redrive": request.user.has_perm("pipelines.redrive_dlq"),
        "incidents": incident_views.pipeline_panel(request, pipeline),
    }
    return TemplateResponse(request, "admin/pipelines/dashboard.html", context)


def series_json(request, pipeline_id: int):
    """Downsampled chart series for one pipeline and range, as JSON; a bad range is a 400 with a sentence."""
    _require_view(request)
    pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
    try:
        start, end, _ = dashboard.parse_range(
            request.GET.get("range"), request.GET.get("start"), request.GET.get("end"), now()
        )
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(dashboard.series(pipeline, start, end))


def _config(p: Pipeline) -> list[tuple[str, list[tuple[str, object]]]]:
    """The discovered configuration, grouped for the side panel."""

    def secs(v):
        return f"{v:,} s" if v is not None else "–"

    return [
        (
            "Queue",
            [
                ("name", p.queue_name or "–"),
                ("type", "FIFO" if p.is_fifo else "standard"),
                ("visibility timeout", secs(p.visibility_timeout)),
                ("retention", secs(p.retention_period)),
            ],
        ),
        (
            "Dead-letter queue",
            [
                ("name", p.dlq_arn.rsplit(":", 1)[-1] if p.dlq_arn else "none"),
                ("maxReceiveCount", p.max_receive_count or "–"),
                ("retention", secs(p.dlq_retention_period)),
            ],
        ),
        (
            "Consumer",
            [
                ("function", p.function_name or "none"),
                ("timeout", secs(p.function_timeout)),
                ("reserved concurrency", p.reserved_concurrency if p.reserved_concurrency is not None else "–"),
                ("batch size", p.batch_size or "–"),
                ("MaximumConcurrency", p.maximum_concurrency or "–"),
                ("ReportBatchItemFailures", {True: "on", False: "off"}.get(p.report_batch_item_failures, "–")),
                ("mapping", p.mapping_state or "–"),
            ],
        ),
        (
            "API",
            [
                ("id", p.api_id or "none"),
                ("name", p.api_name or "–"),
                ("stage", p.api_stage or "–"),
                (
                    "passes request id",
                    {
                        True: f"yes, as '{p.request_id_attribute}'",
                        False: "no: traces cannot link API calls to messages",
                    }.get(p.api_passes_request_id, "–"),
                ),
            ],
        ),
    ]
