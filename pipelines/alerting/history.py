"""Recent history as the rules read it, and each pipeline's trend, stored after every sync.

`refresh` reads the last minutes of every given pipeline in one query, computes its trend (drain
rate, time to loss, recent Lambda errors and throttles, backlog forecast) and stores it on the row,
so the overview reads one table whatever the number of pipelines. It returns each pipeline's trend
and rows for the rule table, which judges them.
"""

from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines import formatting
from pipelines.alerting import trends
from pipelines.models import MetricSample, Pipeline

TREND_MINUTES = 20  # recent errors, throttles and invocations are summed over this window
HISTORY_MINUTES = 70  # what alert rules may look back over (the longest "for" window, plus a baseline)

#: One minute of a pipeline's history, as the alert rules read it.
Row = namedtuple(
    "Row", "minute visible oldest_age errors throttles invocations dlq_visible api_count api_5xx api_latency"
)
TREND_FIELDS = [
    "drain_rate",
    "time_to_loss",
    "time_to_loss_known",
    "forecast_minutes",
    "recent_errors",
    "recent_throttles",
    "recent_invocations",
]
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
    """A pipeline's recent trend (see alerting/trends.py)."""

    drain: trends.Drain
    ttl: float | None  # seconds until messages start expiring; None: no loss in sight, or unknown
    ttl_known: bool = True  # False: neither a loss nor its absence can be projected
    errors: int = 0
    throttles: int = 0
    invocations: int = 0
    forecast_minutes: float | None = None  # until the backlog crosses its threshold at this rate

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.invocations if self.invocations else None

    @property
    def ttl_label(self) -> str:
        return formatting.human_seconds(self.ttl)

    @property
    def loss_label(self) -> str:
        """Time to loss in words: "in 3.0 h", "expiring now", "no loss in sight" or "unknown"."""
        if not self.ttl_known:
            return "unknown"
        if self.ttl is None:
            return "no loss in sight"
        return "expiring now" if self.ttl == 0 else f"in {self.ttl_label}"


def trend_from(pipeline: Pipeline, rows: list[tuple], at: datetime) -> Trend:
    """rows: (minute, visible, oldest_age, errors, throttles, invocations, …), oldest first. The
    backlog trend reads the newest readings (two poll intervals at least), the time to loss the last
    20 minutes of ages; errors and throttles are summed over the last TREND_MINUTES."""
    window = max(trends.DRAIN_WINDOW_MINUTES, 2 * pipeline.poll_interval / 60)
    d = trends.drain([(r[0], r[1]) for r in rows], pipeline.backlog, at, window)
    since = at - timedelta(minutes=TREND_MINUTES)
    latest = [r for r in rows if r[0] >= since]
    queued = None if pipeline.backlog is None else pipeline.backlog + (pipeline.in_flight or 0)
    loss = trends.time_to_loss([(r[0], r[2]) for r in rows], pipeline.retention_period, at, queued, d.eta_minutes)
    forecast = None
    if d.rate and d.rate > 0 and pipeline.backlog is not None and pipeline.backlog <= pipeline.backlog_threshold:
        forecast = (pipeline.backlog_threshold - pipeline.backlog) / d.rate
    return Trend(
        drain=d,
        ttl=loss.seconds,
        ttl_known=loss.known,
        errors=sum(r[3] or 0 for r in latest),
        throttles=sum(r[4] or 0 for r in latest),
        invocations=sum(r[5] or 0 for r in latest),
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


def stored_trend(pipeline: Pipeline) -> Trend:
    """The trend the last refresh stored on the pipeline's row."""
    return Trend(
        drain=trends.Drain(pipeline.backlog, pipeline.drain_rate),
        ttl=pipeline.time_to_loss,
        ttl_known=pipeline.time_to_loss_known,
        errors=pipeline.recent_errors,
        throttles=pipeline.recent_throttles,
        invocations=pipeline.recent_invocations,
        forecast_minutes=pipeline.forecast_minutes,
    )


def refresh(pipelines: list[Pipeline], at: datetime) -> dict[int, tuple[Trend, list[Row]]]:
    """Compute and store the trend of these pipelines (a read, and a write of the trends that changed);
    the rule table judges it.

    Returns each pipeline's trend and its last HISTORY_MINUTES of rows, for the alert rules.
    """
    if not pipelines:
        return {}
    recent = recent_rows([p.pk for p in pipelines], at, HISTORY_MINUTES)
    out, changed = {}, []
    for p in pipelines:
        rows = recent.get(p.pk, [])
        trend = trend_from(p, rows, at)
        before = [getattr(p, f) for f in TREND_FIELDS]
        p.drain_rate, p.time_to_loss, p.forecast_minutes = trend.drain.rate, trend.ttl, trend.forecast_minutes
        p.time_to_loss_known = trend.ttl_known
        p.recent_errors, p.recent_throttles, p.recent_invocations = trend.errors, trend.throttles, trend.invocations
        out[p.pk] = (trend, rows)
        if [getattr(p, f) for f in TREND_FIELDS] != before:
            changed.append(p)
    Pipeline.objects.bulk_update(changed, TREND_FIELDS, batch_size=500)
    return out
