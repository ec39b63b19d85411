"""The overview's rows: one pipeline each, built with f-strings and explicit escaping.

Each row carries an etag, a short hash of what it shows apart from its last-sync time, so the
30-second refresh can answer only the rows that changed; the sync times travel apart, as numbers the
page turns into "2 min ago" itself (they change every minute on every row).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from django.utils.safestring import mark_safe

from pipelines import clock
from pipelines.alerting.history import Trend, stored_trend
from pipelines.formatting import ago, count
from pipelines.models import Health, Pipeline, RuleKind, Severity

_SYNC_TIME = re.compile(r"<time [^>]*>[^<]*</time>")


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
    dlq_causes: str = ""  # the DLQ's top causes from its newest completed triage scan ("" before one)


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
    """The overview's table rows. `by_pipeline` maps a pipeline id to (unresolved incidents, worst
    Severity), already fetched.

    500 rows through the template engine cost ~125 ms and through format_html ~80 ms; f-strings ~15 ms.
    """
    at = at or clock.now()
    by_pipeline = by_pipeline or {}
    return mark_safe("\n".join(render_row(r, dashboard_url, at, by_pipeline, incidents_url)[0] for r in rows))


def etag(html: str) -> str:
    """A row's version: what it shows, apart from how long ago it synced."""
    return hashlib.blake2b(_SYNC_TIME.sub("", html).encode(), digest_size=6).hexdigest()


def render_row(
    r: Row, dashboard_url: str, at: datetime, by_pipeline: dict[int, tuple[int, Any]], incidents_url: str
) -> tuple[str, str]:
    """One row's HTML and its etag."""
    p, colour = r.pipeline, r.health.colour
    reasons = "".join(
        f'<div class="ob-reason" style="color:{sev.colour}">{escape(why)}</div>' for sev, why in r.reasons
    )
    tags = "".join(tag for cond, tag in ((p.is_fifo, " · FIFO"), *config_tags(p)) if cond)
    group = f' · <span class="ob-group">{escape(p.group)}</span>' if p.group else ""
    cells = (
        f'<td class="ob-c-health"><span class="ob-badge" style="background:{colour}">{r.health.label}</span>'
        f"{reasons}</td>"
        f'<td class="ob-c-name"><a class="ob-name" href="{dashboard_url.format(pk=p.pk)}">{escape(p.name)}</a>'
        f"{_incident_badge(by_pipeline.get(p.pk), incidents_url, p.pk)}"
        f'<div class="ob-muted">{escape(p.account.name)}{group}{tags}</div></td>'
        f"{_live_cells(r)}"
        f'<td class="num ob-c-budget" data-label="Budget left">'
        f'<a href="{dashboard_url.format(pk=p.pk).replace("/dashboard/", "/slo/")}">{_budget(r.budget_left)}</a></td>'
        f'<td class="ob-c-sync" data-label="Last sync">{_synced(p, at)}</td>'
    )
    tag = etag(cells + r.health.value)
    html = (
        f'<tr class="ob-row ob-{r.health.value}" data-pipeline="{escape(p.name)}" data-pk="{p.pk}" '
        f'data-etag="{tag}">{cells}</tr>'
    )
    return html, tag


def _live_cells(r: Row) -> str:
    """Backlog, trend, in flight, DLQ, oldest message, time to loss, Lambda and the sparkline."""
    p, t, colour = r.pipeline, r.trend, r.health.colour
    rate = t.drain.rate
    trend_cls = "ob-up" if rate and rate > 0.5 else "ob-down" if rate and rate < -0.5 else ""
    dlq = '<span class="ob-muted">none</span>' if not p.dlq_url else count(p.dlq_depth)
    if p.dlq_depth and r.dlq_causes:
        dlq += f'<div class="ob-muted ob-causes" title="Last triage scan">{escape(r.dlq_causes)}</div>'
    if p.oldest_age is None:
        oldest = "–"
    else:
        oldest = (
            f'{p.oldest_age_label}<div class="ob-meter" title="{p.oldest_age} s of a {p.retention_period} s '
            f'retention period"><span style="width:{p.retention_used_pct}%;background:{colour}"></span></div>'
            f'<div class="ob-muted">SLA {p.oldest_age_sla_label} · retention {p.retention_label}</div>'
        )
    lam = (
        f'{t.errors:,} err · {t.throttles:,} thr<div class="ob-muted">{t.invocations:,} invocations</div>'
        if p.function_name
        else '<span class="ob-muted">–</span>'
    )
    hours = _history_hours(p.sparkline)
    spark = sparkline_svg(p.sparkline, p.backlog, colour)
    if spark and 0 < hours < len(p.sparkline or []):
        spark += f'<div class="ob-muted ob-spark-note">last {hours} h: all its history</div>'
    return (
        f'<td class="num ob-big ob-c-backlog" data-label="Backlog">{count(p.backlog)}'
        f'<div class="ob-muted">of {p.backlog_threshold:,}</div></td>'
        f'<td class="ob-trend ob-c-trend {trend_cls}" data-label="Trend">{escape(t.drain.label)}</td>'
        f'<td class="num ob-c-inflight" data-label="In flight">{count(p.in_flight)}</td>'
        f'<td class="num ob-c-dlq {"ob-warn" if p.dlq_depth else ""}" data-label="DLQ">{dlq}</td>'
        f'<td class="ob-c-oldest" data-label="Oldest message">{oldest}</td>'
        f'<td class="ob-c-loss" data-label="Time to loss">{_loss(p, t)}</td>'
        f'<td class="num ob-c-lambda" data-label="Lambda, 20 min">{lam}</td>'
        f'<td class="ob-c-spark" data-label="Backlog, 24 h">{spark}</td>'
    )


def _loss(p: Pipeline, t: Trend) -> str:
    if not t.ttl_known:
        return '<span class="ob-muted" title="the oldest message\'s age or the retention is not known">unknown</span>'
    if t.ttl is None:
        return '<span class="ob-muted">no loss in sight</span>'
    if t.ttl == 0:
        return '<strong class="ob-crit">expiring now</strong>'
    if loss_severity := p.finding_severity(RuleKind.TIME_TO_LOSS):
        return f'<strong class="ob-loss-{loss_severity.value}">in {t.ttl_label}</strong>'
    return f'<span class="ob-muted">in {t.ttl_label}</span>'


def _synced(p: Pipeline, at: datetime) -> str:
    """The last sync, as a <time> the page keeps saying "… ago" of, and the last error."""
    synced = (
        f'<time datetime="{p.last_sync_at.isoformat()}">{ago(p.last_sync_at, at)}</time>' if p.last_sync_at else "never"
    )
    error = p.last_error or p.metrics_error
    if error:
        short = error if len(error) <= 70 else error[:69] + "…"
        synced += f'<div class="ob-error" title="{escape(error)}">{escape(short)}</div>'
    return synced


def _budget(left: float | None) -> str:
    """The SLO budget-left cell: unknown (under a day measured) is never shown as a full budget."""
    if left is None:
        return '<span class="ob-muted" title="less than a day measured">unknown</span>'
    cls = "ob-crit" if left < 0 else "ob-warn" if left < 25 else ""
    return f'<span class="{cls}">{left:.0f} %</span>'


def build_rows(pipelines: list[Pipeline], at: datetime | None = None, ordered: bool = False) -> list[Row]:
    """Every pipeline with its stored health and trend (plus staleness now), worst first (or in the
    order given, when the database ordered them). No queries."""
    at = at or clock.now()
    rows = []
    for p in pipelines:
        health, reasons = p.current_health(at)
        rows.append(Row(pipeline=p, health=health, reasons=reasons, trend=stored_trend(p)))
    if not ordered:
        rows.sort(key=lambda r: (r.health.rank, -(r.pipeline.backlog or 0), r.pipeline.name))
    return rows
