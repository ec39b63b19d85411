"""Pipeline health from recent history, computed after each sync and stored on the pipeline.

`refresh` reads the last minutes of every given pipeline in one query, computes its trend (drain
rate, time to loss, recent Lambda errors and throttles, backlog forecast) and the health it
implies (`Pipeline.status_reasons`), and stores both, so the overview reads one table whatever the
number of pipelines. `refresh_sparklines` does the same for the 24-hour backlog sparkline from the
hourly rollups, after each rollup.
"""

from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import trends
from .models import MetricRollup, MetricSample, Pipeline

TREND_MINUTES = 20  # the window drain rates, age trends and recent errors are read from
HISTORY_MINUTES = 70  # what alert rules may look back over (the longest "for" window, plus a baseline)
SPARK_HOURS = 24

#: One minute of a pipeline's history, as health and alert rules read it.
Row = namedtuple(
    "Row", "minute visible oldest_age errors throttles invocations dlq_visible api_count api_5xx api_latency"
)
ROW_FIELDS = (
    "minute",
    "visible",
    "oldest_age",
    "lambda_errors",
    "lambda_throttles",
    "lambda_invocations",
    "dlq_visible",
    "api_count",
    "api_5xx",
    "api_latency_avg",
)


@dataclass
class Trend:
    """A pipeline's recent trend (see trends.py)."""

    drain: trends.Drain
    ttl: float | None  # seconds until the oldest message expires, None when no loss is in sight
    errors: int = 0
    throttles: int = 0
    invocations: int = 0
    forecast_minutes: float | None = None  # until the backlog crosses its threshold at this rate

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.invocations if self.invocations else None

    @property
    def ttl_label(self) -> str:
        return trends.human_seconds(self.ttl)

    @property
    def loss_level(self) -> str:
        """The loss's severity when it is near enough to matter (see models.LOSS_*), else an empty string."""
        from .models import LOSS_CRITICAL_SECONDS, LOSS_WARNING_SECONDS

        if self.ttl is None:
            return ""
        return "critical" if self.ttl < LOSS_CRITICAL_SECONDS else "warning" if self.ttl < LOSS_WARNING_SECONDS else ""


def trend_from(pipeline: Pipeline, rows: list[tuple], at: datetime) -> Trend:
    """rows: (minute, visible, oldest_age, errors, throttles, invocations, …) of the last
    TREND_MINUTES, oldest first."""
    d = trends.drain([(r[0], r[1]) for r in rows], pipeline.backlog)
    ttl = trends.time_to_loss([(r[0], r[2]) for r in rows], pipeline.retention_period, at)
    forecast = None
    if d.rate and d.rate > 0 and pipeline.backlog is not None and pipeline.backlog <= pipeline.backlog_threshold:
        forecast = (pipeline.backlog_threshold - pipeline.backlog) / d.rate
    return Trend(
        drain=d,
        ttl=ttl,
        errors=sum(r[3] or 0 for r in rows),
        throttles=sum(r[4] or 0 for r in rows),
        invocations=sum(r[5] or 0 for r in rows),
        forecast_minutes=forecast,
    )


def recent_rows(pipeline_ids: Iterable[int], at: datetime, minutes: int = TREND_MINUTES) -> dict[int, list[Row]]:
    """One query: each pipeline's minute rows of the last `minutes`, oldest first."""
    out: dict[int, list[Row]] = defaultdict(list)
    qs = (
        MetricSample.objects.filter(pipeline_id__in=list(pipeline_ids), minute__gte=at - timedelta(minutes=minutes))
        .order_by("minute")
        .values_list("pipeline_id", *ROW_FIELDS)
    )
    for pid, *rest in qs:
        out[pid].append(Row(*rest))
    return out


def refresh(pipelines: list[Pipeline], at: datetime) -> dict[int, tuple[Trend, list[Row]]]:
    """Compute and store trend and health for these pipelines (two queries in all).

    Returns each pipeline's trend and its last HISTORY_MINUTES of rows, for the alert rules.
    """
    if not pipelines:
        return {}
    recent = recent_rows([p.pk for p in pipelines], at, HISTORY_MINUTES)
    since = at - timedelta(minutes=TREND_MINUTES)
    out = {}
    for p in pipelines:
        rows = recent.get(p.pk, [])
        trend = trend_from(p, [r for r in rows if r.minute >= since], at)
        p.apply_trend(trend, at)
        out[p.pk] = (trend, rows)
    Pipeline.objects.bulk_update(
        pipelines,
        [
            "health",
            "health_reasons",
            "drain_rate",
            "time_to_loss",
            "forecast_minutes",
            "recent_errors",
            "recent_throttles",
            "recent_invocations",
        ],
        batch_size=500,
    )
    return out


def refresh_sparklines(at: datetime, pipeline_ids: Iterable[int] | None = None) -> int:
    """Store each pipeline's last 24 hourly backlog peaks (None for hours without data)."""
    start = (at - timedelta(hours=SPARK_HOURS)).replace(minute=0, second=0, microsecond=0)
    qs = MetricRollup.objects.filter(hour__gte=start).order_by()
    pipes = Pipeline.objects.only("pk", "sparkline")
    if pipeline_ids is not None:
        qs = qs.filter(pipeline_id__in=list(pipeline_ids))
        pipes = pipes.filter(pk__in=list(pipeline_ids))
    found: dict[int, list] = defaultdict(lambda: [None] * SPARK_HOURS)
    for pid, hour, vmax in qs.values_list("pipeline_id", "hour", "visible_max"):
        i = int((hour - start).total_seconds() // 3600)
        if 0 <= i < SPARK_HOURS:
            found[pid][i] = vmax
    changed = []
    for p in pipes:
        line = found[p.pk] if p.pk in found else []
        if line != p.sparkline:
            p.sparkline = line
            changed.append(p)
    Pipeline.objects.bulk_update(changed, ["sparkline"], batch_size=500)
    return len(changed)
