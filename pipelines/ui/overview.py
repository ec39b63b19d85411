"""The overview, the admin site's landing page: every pipeline, worst first.

It reads one table: health, trend and sparkline are stored on each pipeline after every sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe

from pipelines import clock
from pipelines.alerting.history import Trend, stored_trend
from pipelines.formatting import ago, count
from pipelines.models import AwsAccount, Health, Pipeline, RuleKind, Severity
from pipelines.slo.windows import budgets_left
from pipelines.ui import incidents, spend
from pipelines.ui.access import account_filter, require_view

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
    "time_to_loss_known",
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
    "slo_freshness_target",
    "slo_dlq_max_percent",
)


def _overview_context(request) -> dict:
    require_view(request)
    at = clock.now()
    pipes = Pipeline.objects.select_related("account").only(*OVERVIEW_FIELDS).order_by("name")
    account = request.GET.get("account", "")
    account_id = account_filter(account)
    if account_id is not None:
        pipes = pipes.filter(account_id=account_id)
    rows = build_rows(list(pipes), at)
    budgets = budgets_left([r.pipeline for r in rows], at)  # the SLOs' budget left: three queries
    for r in rows:
        r.budget_left = budgets.get(r.pipeline.pk)
    # One query for every unresolved incident (of the chosen account), mapped to rows below.
    unresolved = incidents.unresolved_for(request.user, account_id)
    counts = dict.fromkeys(Health, 0)
    for r in rows:
        counts[r.health] += 1
    health = request.GET.get("health", "")
    if health in Health.values:
        rows = [r for r in rows if r.health == health]
    # reverse() once: the row URL differs only by id.
    url = reverse("admin:pipelines_pipeline_dashboard", args=[0]).replace("/0/", "/{pk}/")
    by_pipeline = incidents.counts_by_pipeline(unresolved) if unresolved is not None else None
    rows_html = render_rows(rows, url, at, by_pipeline, incidents.changelist_url())
    return {
        "rows": rows,
        "rows_html": rows_html,
        "at": at,
        "unresolved_incidents": unresolved,
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
    context["incidents"] = incidents.overview_strip(request, context["unresolved_incidents"], request.get_full_path())
    # Only on the full page: the rows' 30-second refresh does not recompute spend.
    context["top_spenders"] = spend.top_spenders(context["at"], account_filter(request.GET.get("account", "")))
    request.current_app = site.name
    return TemplateResponse(request, "admin/pipelines/overview.html", context)


def overview_rows(request):
    """The overview's table body alone, for its periodic refresh."""
    return TemplateResponse(request, "admin/pipelines/_overview_rows.html", _overview_context(request))


def _history_hours(hourly: list) -> int:
    """How many of the sparkline's hours the pipeline has history for: from its first hour with data."""
    hourly = hourly or []
    first = next((i for i, v in enumerate(hourly) if v is not None), len(hourly))
    return len(hourly) - first


def sparkline_svg(hourly: list, current: int | None, colour: str, width: int = 120, height: int = 28) -> str:
    """An inline SVG of the backlog: hourly peaks then the current value; missing hours break the line.

    The hours before the pipeline's first data are left out, so a pipeline with four hours of history
    draws them across the whole width (and says so) instead of in the last sixth of it.
    """
    hours = _history_hours(hourly)
    values = [*(hourly or [])[len(hourly or []) - hours :], current] if hours or current is not None else []
    nums = [v for v in values if v is not None]
    if not nums:
        return ""
    top = max(max(nums), 1)
    step = (width - 2) / max(len(values) - 1, 1)
    segments, current_seg = [], []
    for i, v in enumerate(values):
        if v is None:
            if current_seg:
                segments.append(current_seg)
            current_seg = []
            continue
        current_seg.append(f"{1 + i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}")
    if current_seg:
        segments.append(current_seg)
    lines = "".join(
        f'<polyline points="{" ".join(seg)}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        if len(seg) > 1
        else f'<circle cx="{seg[0].split(",")[0]}" cy="{seg[0].split(",")[1]}" r="1.5" fill="{colour}"/>'
        for seg in segments
    )
    if not hours:
        span = "now"
    else:
        span = f"last {hours} h" if hours >= len(hourly) else f"last {hours} h (all its history)"
    label = f"backlog, {span}, peak {max(nums):,.0f}"
    return (
        f'<svg class="ob-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{label}"><title>{label}</title>{lines}</svg>'
    )


@dataclass
class Row:
    pipeline: Pipeline
    health: Health
    reasons: list[tuple[Health, str]]
    trend: Trend
    budget_left: float | None = None  # the smallest SLO error budget left, in percent (None: unknown)


NO_DLQ_TAG = (
    f' · <span class="ob-config" style="color:{Severity.CRITICAL.colour}" title="No dead-letter queue: a message '
    "that keeps failing is retried until it expires, unseen (a critical insight; health judges what happens, "
    'not the configuration)">no DLQ</span>'
)
NO_CONSUMER_TAG = (
    f' · <span class="ob-config" style="color:{Severity.WARNING.colour}" title="No Lambda consumer found: nothing '
    'drains this queue unless another kind of consumer does (a warning insight)">no consumer</span>'
)


def config_tags(p: Pipeline) -> tuple[tuple[bool, str], ...]:
    """Configuration problems shown beside the name, coloured like their insights' severity."""
    return ((not p.dlq_url, NO_DLQ_TAG), (not p.function_name, NO_CONSUMER_TAG))


def _incident_badge(found: tuple[int, Any] | None, url: str, pk: int) -> str:
    """A pipeline's count of unresolved incidents, coloured by the worst, linking to their list."""
    if not found:
        return ""
    n, worst = found
    return (
        f' <a class="ob-inc-badge" style="background:{worst.colour}" title="{n} unresolved incident(s)" '
        f'href="{url}?pipeline__id__exact={pk}&amp;status=unresolved">{n}</a>'
    )


def render_rows(
    rows: list[Row],
    dashboard_url: str,
    at: datetime | None = None,
    by_pipeline: dict[int, tuple[int, Any]] | None = None,
    incidents_url: str = "",
) -> str:
    """The overview's table rows, built with f-strings and explicit escaping of every text value.

    500 rows through the template engine cost ~125 ms and through format_html ~80 ms; this ~15 ms.
    `by_pipeline` maps a pipeline id to (unresolved incidents, worst Severity), already fetched.
    """
    at = at or clock.now()
    by_pipeline = by_pipeline or {}
    out = []
    for r in rows:
        p, t, colour = r.pipeline, r.trend, r.health.colour
        reasons = "".join(
            f'<div class="ob-reason" style="color:{sev.colour}">{escape(why)}</div>' for sev, why in r.reasons
        )
        tags = "".join(tag for cond, tag in ((p.is_fifo, " · FIFO"), *config_tags(p)) if cond)
        rate = t.drain.rate
        trend_cls = "ob-up" if rate and rate > 0.5 else "ob-down" if rate and rate < -0.5 else ""
        dlq = '<span class="ob-muted">none</span>' if not p.dlq_url else count(p.dlq_depth)
        if p.oldest_age is None:
            oldest = "–"
        else:
            oldest = (
                f'{p.oldest_age_label}<div class="ob-meter" title="{p.oldest_age} s of a {p.retention_period} s '
                f'retention period"><span style="width:{p.retention_used_pct}%;background:{colour}"></span></div>'
                f'<div class="ob-muted">SLA {p.oldest_age_sla_label} · retention {p.retention_label}</div>'
            )
        if not t.ttl_known:
            loss = (
                '<span class="ob-muted" title="the oldest message\'s age or the retention is not known">unknown</span>'
            )
        elif t.ttl is None:
            loss = '<span class="ob-muted">no loss in sight</span>'
        elif t.ttl == 0:
            loss = '<strong class="ob-crit">expiring now</strong>'
        elif loss_severity := p.finding_severity(RuleKind.TIME_TO_LOSS):
            loss = f'<strong class="ob-loss-{loss_severity.value}">in {t.ttl_label}</strong>'
        else:
            loss = f'<span class="ob-muted">in {t.ttl_label}</span>'
        lam = (
            f'{t.errors:,} err · {t.throttles:,} thr<div class="ob-muted">{t.invocations:,} invocations</div>'
            if p.function_name
            else '<span class="ob-muted">–</span>'
        )
        synced = (
            f'<time datetime="{p.last_sync_at.isoformat()}">{ago(p.last_sync_at, at)}</time>'
            if p.last_sync_at
            else "never"
        )
        error = p.last_error or p.metrics_error
        if error:
            short = error if len(error) <= 70 else error[:69] + "…"
            synced += f'<div class="ob-error" title="{escape(error)}">{escape(short)}</div>'
        hours = _history_hours(p.sparkline)
        spark = sparkline_svg(p.sparkline, p.backlog, colour)
        if spark and 0 < hours < len(p.sparkline or []):
            spark += f'<div class="ob-muted ob-spark-note">last {hours} h: all its history</div>'
        out.append(
            f'<tr class="ob-row ob-{r.health.value}" data-pipeline="{escape(p.name)}">'
            f'<td class="ob-c-health"><span class="ob-badge" style="background:{colour}">{r.health.label}</span>'
            f"{reasons}</td>"
            f'<td class="ob-c-name"><a class="ob-name" href="{dashboard_url.format(pk=p.pk)}">{escape(p.name)}</a>'
            f"{_incident_badge(by_pipeline.get(p.pk), incidents_url, p.pk)}"
            f'<div class="ob-muted">{escape(p.account.name)}{tags}</div></td>'
            f'<td class="num ob-big ob-c-backlog" data-label="Backlog">{count(p.backlog)}'
            f'<div class="ob-muted">of {p.backlog_threshold:,}</div></td>'
            f'<td class="ob-trend ob-c-trend {trend_cls}" data-label="Trend">{escape(t.drain.label)}</td>'
            f'<td class="num ob-c-inflight" data-label="In flight">{count(p.in_flight)}</td>'
            f'<td class="num ob-c-dlq {"ob-warn" if p.dlq_depth else ""}" data-label="DLQ">{dlq}</td>'
            f'<td class="ob-c-oldest" data-label="Oldest message">{oldest}</td>'
            f'<td class="ob-c-loss" data-label="Time to loss">{loss}</td>'
            f'<td class="num ob-c-lambda" data-label="Lambda, 20 min">{lam}</td>'
            f'<td class="ob-c-spark" data-label="Backlog, 24 h">{spark}</td>'
            f'<td class="num ob-c-budget" data-label="Budget left">'
            f'<a href="{dashboard_url.format(pk=p.pk).replace("/dashboard/", "/slo/")}">{_budget(r.budget_left)}</a></td>'
            f'<td class="ob-c-sync" data-label="Last sync">{synced}</td></tr>'
        )
    return mark_safe("\n".join(out))


def _budget(left: float | None) -> str:
    """The SLO budget-left cell: unknown (under a day measured) is never shown as a full budget."""
    if left is None:
        return '<span class="ob-muted" title="less than a day measured">unknown</span>'
    cls = "ob-crit" if left < 0 else "ob-warn" if left < 25 else ""
    return f'<span class="{cls}">{left:.0f} %</span>'


def build_rows(pipelines: list[Pipeline], at: datetime | None = None) -> list[Row]:
    """Every pipeline with its stored health and trend (plus staleness now), worst first. No queries."""
    at = at or clock.now()
    rows = []
    for p in pipelines:
        health, reasons = p.current_health(at)
        rows.append(Row(pipeline=p, health=health, reasons=reasons, trend=stored_trend(p)))
    rows.sort(key=lambda r: (r.health.rank, -(r.pipeline.backlog or 0), r.pipeline.name))
    return rows
