"""History upkeep: roll minute rows up into hourly rows, prune both past their retention, and keep
each pipeline's 24-hour sparkline.

Both run on beat in bounded batches so a large backlog of work never holds the database for long:
`rollup` handles at most `max_hours` hours per run and `prune` deletes at most `batch` rows per
statement until done or out of budget. On Postgres the minute rows are partitioned by day, and
their retention drops whole days instead (collection/partitions.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, F, FloatField, Max, Min, Q, Sum
from django.db.models.functions import TruncHour

from pipelines import clock
from pipelines.collection import partitions, retention
from pipelines.collection.store import floor_hour, upsert_samples
from pipelines.models import AuditEntry, MetricRollup, MetricSample, Pipeline
from pipelines.slo.windows import API_FIELDS, api_aggregates, arrivals_by_hour

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
#: Averages over events, weighted by the minute's event count so an hour's average is the events'
#: average (what spend multiplies by the hour's invocations), not the mean of the minutes' averages.
WEIGHTED = {"lambda_duration_avg": "lambda_invocations", "api_latency_avg": "api_count"}


def _weighted(name: str, weight: str) -> dict:
    counted = Q(**{f"{name}__isnull": False, f"{weight}__gt": 0})
    return {
        f"w_{name}": Sum(F(weight) * F(name), filter=counted, output_field=FloatField()),
        f"n_{name}": Sum(weight, filter=counted),
    }


def rollup(at=None, max_hours: int = 48) -> int:
    """Aggregate complete hours of minute rows into MetricRollup; returns rows written.

    Starts at the newest rolled-up hour (re-rolled, since late CloudWatch data may have arrived)
    or the oldest minute row, and stops at the last complete hour.
    """
    at = at or clock.now()
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
            **{k: v for name, weight in WEIGHTED.items() for k, v in _weighted(name, weight).items()},
            # What the SLOs read (pipelines/slo/): measured and late minutes against the SLA as it is now.
            age_minutes=Count("id", filter=Q(oldest_age__isnull=False)),
            late_minutes=Count("id", filter=Q(oldest_age__gte=F("pipeline__oldest_age_sla"))),
            dlq_minutes=Count("id", filter=Q(dlq_visible__isnull=False)),
            # The API's requests, 5xx and slow minutes (against its latency threshold as it is now).
            **{f"slo_{name}": agg for name, agg in api_aggregates().items()},
        )
    )
    arrivals = arrivals_by_hour(start, end)

    def values(r):
        out = {"samples": r["samples"], "visible_max": r["visible_max"]}
        out.update({k: r[k] for k in ("age_minutes", "late_minutes", "dlq_minutes")})
        out["dlq_arrivals"] = arrivals.get((r["pipeline_id"], r["h"]), 0) if r["dlq_minutes"] else None
        out.update({name: r[f"slo_{name}"] or 0 for name in API_FIELDS})
        for name in AGGREGATES:
            v = r[f"agg_{name}"]
            out[name] = None if v is None else (float(v) if name in FLOAT_FIELDS else int(round(v)))
        for name in WEIGHTED:
            if r[f"n_{name}"]:
                out[name] = float(r[f"w_{name}"]) / r[f"n_{name}"]
        return out

    written = upsert_samples(MetricRollup, "hour", ((r["pipeline_id"], r["h"], values(r)) for r in rows))
    if written:
        retention.refresh_sparklines(clock.now())
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


def prune_samples(at: datetime, batch: int, budget: int) -> int:
    """Minute rows past RAW_RETENTION_DAYS: on a partitioned table (Postgres) whole days are dropped
    (and days ahead created, collection/partitions.py), elsewhere rows are deleted in batches."""
    cutoff = at - timedelta(days=settings.RAW_RETENTION_DAYS)
    if partitions.enabled():
        return partitions.prune(at, cutoff)
    return _delete_older(MetricSample, "minute", cutoff, batch, budget)


def prune_audit(at: datetime, batch: int, budget: int) -> int:
    """Audit entries older than AUDIT_KEEP_DAYS days, `batch` rows per statement so a long trail never
    holds its table for long; none with AUDIT_KEEP_DAYS = 0 (kept forever)."""
    if not settings.AUDIT_KEEP_DAYS:
        return 0
    return _delete_older(AuditEntry, "at", at - timedelta(days=settings.AUDIT_KEEP_DAYS), batch, budget)


def prune(at=None, batch: int | None = None, budget: int = 1_000_000) -> dict[str, int]:
    """Remove minute rows older than RAW_RETENTION_DAYS (whole days on Postgres, see `prune_samples`),
    hourly rows older than ROLLUP_RETENTION_DAYS and audit entries older than AUDIT_KEEP_DAYS."""
    at = at or clock.now()
    batch = batch or settings.MAINTENANCE_BATCH_ROWS
    return {
        "samples": prune_samples(at, batch, budget),
        "rollups": _delete_older(
            MetricRollup, "hour", at - timedelta(days=settings.ROLLUP_RETENTION_DAYS), batch, budget
        ),
        "audit": prune_audit(at, batch, budget),
    }


SPARK_HOURS = 24


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
