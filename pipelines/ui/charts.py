"""Chart series for the pipeline page: one query per chart, downsampled to at most `MAX_POINTS` buckets.

Minute rows for short ranges, hourly rollups for long ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from pipelines import clock
from pipelines.models import MetricRollup, MetricSample, Pipeline

MAX_POINTS = 300
RANGES = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
ROLLUP_BEYOND = timedelta(days=2)  # longer ranges read hourly rollups
SERIES_FIELDS = (
    "visible",
    "in_flight",
    "delayed",
    "dlq_visible",
    "oldest_age",
    "dlq_oldest_age",
    "sent",
    "received",
    "deleted",
    "lambda_invocations",
    "lambda_errors",
    "lambda_throttles",
    "lambda_concurrency",
    "lambda_duration_avg",
    "lambda_duration_p99",
    "api_count",
    "api_4xx",
    "api_5xx",
    "api_latency_avg",
    "api_latency_p99",
)
#: Per-minute counts: a bucket shows their average per minute, so the unit does not change with range.
COUNT_FIELDS = {
    "sent",
    "received",
    "deleted",
    "lambda_invocations",
    "lambda_errors",
    "lambda_throttles",
    "api_count",
    "api_4xx",
    "api_5xx",
}
#: Levels and ages: a bucket shows its peak, so a short spike is not averaged away.
PEAK_FIELDS = {
    "visible",
    "in_flight",
    "delayed",
    "dlq_visible",
    "oldest_age",
    "dlq_oldest_age",
    "lambda_concurrency",
    "lambda_duration_p99",
    "api_latency_p99",
}


def parse_range(value: str | None, start: str | None, end: str | None, at: datetime) -> tuple[datetime, datetime, str]:
    """A named range, or a custom start/end (ISO). Raises ValueError with a sentence on bad input."""
    if value == "custom" or (start and not value):
        a, b = parse_datetime(start or ""), parse_datetime(end or "") if end else at
        if a is None or b is None:
            raise ValueError("Enter the custom range as dates and times, e.g. 2026-11-20T08:00.")
        a = a if a.tzinfo else a.replace(tzinfo=UTC)
        b = b if b.tzinfo else b.replace(tzinfo=UTC)
        if a >= b:
            raise ValueError("The range must start before it ends.")
        if b - a > timedelta(days=455):
            raise ValueError("Ranges are limited to 455 days, the longest history kept.")
        return a, min(b, at), "custom"
    value = value or "24h"
    if value not in RANGES:
        raise ValueError(f"Unknown range {value!r}: choose one of {', '.join(RANGES)} or custom.")
    return at - RANGES[value], at, value


def series(pipeline: Pipeline, start: datetime, end: datetime) -> dict[str, Any]:
    """Downsampled series for one pipeline over [start, end): one query, ≤ MAX_POINTS per series."""
    raw_kept_from = clock.now() - timedelta(days=settings.RAW_RETENTION_DAYS)
    use_rollups = end - start > ROLLUP_BEYOND or start < raw_kept_from
    step = 3600 if use_rollups else 60
    span = (end - start).total_seconds()
    bucket = step * max(1, math.ceil(span / (MAX_POINTS * step)))
    if use_rollups:
        fields = [("visible_max" if f == "visible" else f) for f in SERIES_FIELDS]
        qs = MetricRollup.objects.filter(pipeline=pipeline, hour__gte=start, hour__lt=end).order_by("hour")
        rows = qs.values_list("hour", *fields)
        per_row_minutes = 60
    else:
        qs = MetricSample.objects.filter(pipeline=pipeline, minute__gte=start, minute__lt=end).order_by("minute")
        rows = qs.values_list("minute", *SERIES_FIELDS)
        per_row_minutes = 1
    origin = int(start.timestamp()) // bucket * bucket
    n_buckets = int((end.timestamp() - origin) // bucket) + 1
    acc: list[dict[str, list[float]]] = [defaultdict(list) for _ in range(n_buckets)]
    for row in rows:
        i = (int(row[0].timestamp()) - origin) // bucket
        if not 0 <= i < n_buckets:
            continue
        for name, v in zip(SERIES_FIELDS, row[1:]):
            if v is not None:
                acc[i][name].append(v)
    out: dict[str, list] = {name: [] for name in SERIES_FIELDS}
    times = []
    for i in range(n_buckets):
        times.append(datetime.fromtimestamp(origin + i * bucket, tz=start.tzinfo).isoformat())
        for name in SERIES_FIELDS:
            vals = acc[i].get(name)
            if not vals:
                out[name].append(None)  # a gap, not a zero
            elif name in PEAK_FIELDS:
                out[name].append(max(vals))
            elif name in COUNT_FIELDS:  # per minute, over the minutes that have a value
                out[name].append(round(sum(vals) / (len(vals) * per_row_minutes), 3))
            else:
                out[name].append(round(sum(vals) / len(vals), 3))
    return {
        "pipeline": pipeline.name,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "bucket_seconds": bucket,
        "source": "hourly rollups" if use_rollups else "minute rows",
        "t": times,
        "series": out,
        "lines": {
            "oldest_age_sla": pipeline.oldest_age_sla,
            "retention_period": pipeline.retention_period,
            "maximum_concurrency": pipeline.maximum_concurrency or pipeline.reserved_concurrency,
            "backlog_threshold": pipeline.backlog_threshold,
        },
    }
