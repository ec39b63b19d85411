"""History upkeep: roll minute rows up into hourly rows, and prune both past their retention.

Both run on beat in bounded batches so a large backlog of work never holds the database for long:
`rollup` handles at most `max_hours` hours per run and `prune` deletes at most `batch` rows per
statement until done or out of budget.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, Max, Min, Sum
from django.db.models.functions import TruncHour

from . import health
from .collect import _upsert_samples, floor_hour
from .models import MetricRollup, MetricSample, now

# How each field is aggregated over an hour: levels are averaged, counts summed, ages and peaks maxed.
AGGREGATES = {
    "visible": Avg,
    "in_flight": Avg,
    "delayed": Avg,
    "dlq_visible": Avg,
    "oldest_age": Max,
    "dlq_oldest_age": Max,
    "sent": Sum,
    "received": Sum,
    "deleted": Sum,
    "empty_receives": Sum,
    "lambda_invocations": Sum,
    "lambda_errors": Sum,
    "lambda_throttles": Sum,
    "lambda_duration_avg": Avg,
    "lambda_duration_p99": Max,
    "lambda_concurrency": Max,
    "api_count": Sum,
    "api_4xx": Sum,
    "api_5xx": Sum,
    "api_latency_avg": Avg,
    "api_latency_p99": Max,
}
FLOAT_FIELDS = {"lambda_duration_avg", "lambda_duration_p99", "api_latency_avg", "api_latency_p99"}


def rollup(at=None, max_hours: int = 48) -> int:
    """Aggregate complete hours of minute rows into MetricRollup; returns rows written.

    Starts at the newest rolled-up hour (re-rolled, since late CloudWatch data may have arrived)
    or the oldest minute row, and stops at the last complete hour.
    """
    at = at or now()
    last_complete = floor_hour(at)  # exclusive upper bound
    newest = MetricRollup.objects.filter(samples__gt=0).aggregate(h=Max("hour"))["h"]
    if newest is None:
        oldest = MetricSample.objects.aggregate(m=Min("minute"))["m"]
        if oldest is None:
            return 0
        start = floor_hour(oldest)
    else:
        start = newest - timedelta(hours=1)
    end = min(last_complete, start + timedelta(hours=max_hours))
    return rollup_range(start, end)


def rollup_range(start, end) -> int:
    """Aggregate the minute rows of the hours in [start, end) into MetricRollup."""
    start, end = floor_hour(start), end
    if start >= end:
        return 0
    rows = (
        MetricSample.objects.filter(minute__gte=start, minute__lt=end)
        .annotate(h=TruncHour("minute"))
        .values("pipeline_id", "h")
        .annotate(
            samples=Count("id"),
            visible_max=Max("visible"),
            **{f"agg_{name}": fn(name) for name, fn in AGGREGATES.items()},
        )
    )

    def values(r):
        out = {"samples": r["samples"], "visible_max": r["visible_max"]}
        for name in AGGREGATES:
            v = r[f"agg_{name}"]
            out[name] = None if v is None else (float(v) if name in FLOAT_FIELDS else int(round(v)))
        return out

    written = _upsert_samples(MetricRollup, "hour", ((r["pipeline_id"], r["h"], values(r)) for r in rows))
    if written:
        health.refresh_sparklines(now())
    return written


def _delete_older(model, field: str, cutoff, batch: int, budget: int) -> int:
    deleted = 0
    while deleted < budget:
        ids = list(model.objects.filter(**{f"{field}__lt": cutoff}).values_list("id", flat=True)[:batch])
        if not ids:
            break
        model.objects.filter(id__in=ids).delete()
        deleted += len(ids)
    return deleted


def prune(at=None, batch: int | None = None, budget: int = 1_000_000) -> dict[str, int]:
    """Delete minute rows older than RAW_RETENTION_DAYS and hourly rows older than ROLLUP_RETENTION_DAYS."""
    at = at or now()
    batch = batch or settings.MAINTENANCE_BATCH_ROWS
    return {
        "samples": _delete_older(
            MetricSample, "minute", at - timedelta(days=settings.RAW_RETENTION_DAYS), batch, budget
        ),
        "rollups": _delete_older(
            MetricRollup, "hour", at - timedelta(days=settings.ROLLUP_RETENTION_DAYS), batch, budget
        ),
    }
