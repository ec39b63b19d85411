"""One pipeline's page: health and its reasons, trend, charts, configuration, insights, incidents."""

from __future__ import annotations

from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from pipelines import access, clock
from pipelines.access.pages import pipeline_or_404
from pipelines.alerting.history import stored_trend
from pipelines.collection.cost import monthly_cost
from pipelines.dlq import triage
from pipelines.formatting import duration
from pipelines.models import Pipeline, RuleKind, TriageScan, TriageStatus
from pipelines.registry.insights import ScanPair, insights_for
from pipelines.ui import charts, incidents, spend


def pipeline_dashboard(request, pipeline_id: int, model_admin):
    pipeline = pipeline_or_404(request, pipeline_id)
    at = clock.now()
    health, reasons = pipeline.current_health(at)
    trend = stored_trend(pipeline)
    cost = monthly_cost(pipeline, pipeline.account.unsupported_statistics)
    spent = spend.spend_for([pipeline], at)[pipeline.pk]
    causes, scans = _triage(pipeline)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Pipeline._meta,
        "title": pipeline.name,
        "pipeline": pipeline,
        "health": health,
        "reasons": reasons,
        "trend": trend,
        "loss_severity": pipeline.finding_severity(RuleKind.TIME_TO_LOSS),
        "ranges": list(charts.RANGES),
        "range": request.GET.get("range") or charts.default_range(pipeline, at),
        "series_url": reverse("admin:pipelines_pipeline_series", args=[pipeline.pk]),
        "cost": cost,
        "config": _config(pipeline),
        "insights": insights_for(pipeline, spent, scans),
        "triage": causes,
        "spend": spend.card(spent),
        "spend_chart": spent.chart(),  # in the page: no second request racing the series'
        "spend_url": reverse("admin:pipelines_pipeline_spend", args=[pipeline.pk]),
        "can_change": model_admin.has_change_permission(request, pipeline),
        "can_redrive": access.can(request, access.REDRIVE, pipeline),
        "incidents": incidents.pipeline_panel(request, pipeline),
    }
    return TemplateResponse(request, "admin/pipelines/dashboard.html", context)


def _triage(pipeline: Pipeline) -> tuple[dict | None, ScanPair | None]:
    """The DLQ's top causes from its last completed triage scan (None without a DLQ), and that scan
    compared with the one before it, for the new-failure insight (None before a second scan)."""
    if not pipeline.dlq_url:
        return None, None
    done = list(
        TriageScan.objects.filter(pipeline=pipeline, status=TriageStatus.COMPLETED).order_by("-created_at", "-pk")[:2]
    )
    causes = {"url": reverse("admin:pipelines_pipeline_dlq_triage", args=[pipeline.pk]), "scan": None, "summary": ""}
    if not done:
        return causes, None
    groups = tuple(done[0].groups.all())
    causes.update(scan=done[0], summary=triage.causes_summary(groups) if groups else "")
    if len(done) < 2:
        return causes, None
    before = frozenset(done[1].groups.values_list("signature", flat=True))
    return causes, ScanPair(groups, done[1].created_at, before)


def series_json(request, pipeline_id: int):
    """Downsampled chart series for one pipeline and range, as JSON; a bad range is a 400 with a sentence.

    `range` is a named range or `custom` with `start` and `end` (ISO 8601 with an offset, or Unix
    seconds; an open end means now); `tz` names the zone of times written without an offset.
    """
    pipeline = pipeline_or_404(request, pipeline_id, qs=Pipeline.objects.all())
    try:
        start, end, name = charts.parse_range(
            request.GET.get("range"),
            request.GET.get("start"),
            request.GET.get("end"),
            clock.now(),
            request.GET.get("tz"),
        )
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(charts.series(pipeline, start, end, name))


def _config(p: Pipeline) -> list[tuple[str, list[tuple[str, object]]]]:
    """The discovered configuration, grouped for the side panel."""

    def secs(v):
        return duration(v) if v is not None else "–"

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
                (
                    "memory",
                    f"{p.function_memory_mb:,} MB, {p.function_architecture or 'x86_64'}"
                    if p.function_memory_mb
                    else "–",
                ),
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
