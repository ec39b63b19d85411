"""Chart series for the pipeline page: one query per chart, downsampled to at most `MAX_POINTS` buckets.

Minute rows for short ranges, hourly rollups for long ones.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def parse_range(
    value: str | None, start: str | None, end: str | None, at: datetime, tz: str | None = None
) -> tuple[datetime, datetime, str]:
    """A named range, or a custom start/end, as UTC moments. Raises ValueError with a sentence on bad input.

    Custom times are ISO 8601 with an offset ('2026-11-20T08:00-05:00', '…Z') or Unix seconds (or
    milliseconds). A time without an offset is read in `tz`, an IANA zone name, or in UTC when no zone
    is given (what links made before offsets meant).
    """
    zone = _zone(tz)
    if value == "custom" or (start and not value):
        if not start:
            raise ValueError("Enter the start of the custom range, e.g. 2026-11-20T08:00-05:00.")
        a = _moment(start, zone, "start")
        b = _moment(end, zone, "end") if end else at
        if a >= at:
            raise ValueError(f"The range starts after now ({at:%Y-%m-%d %H:%M} UTC): there is no data there yet.")
        if a >= b:
            raise ValueError("The range must start before it ends.")
        if b - a > timedelta(days=455):
            raise ValueError("Ranges are limited to 455 days, the longest history kept.")
        return a, min(b, at), "custom"
    value = value or "24h"
    if value not in RANGES:
        raise ValueError(f"Unknown range {value!r}: choose one of {', '.join(RANGES)} or custom.")
    return at - RANGES[value], at, value


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"Unknown time zone {name!r}: use an IANA name such as America/New_York, or UTC.") from None


_FIRST_MOMENT = math.ceil(datetime.min.replace(tzinfo=UTC).timestamp())

#: "…T16:30 05:30": a '+' before an offset that a hand-typed URL turned into a space.
_SPACED_OFFSET = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


def _moment(text: str, zone: tzinfo, which: str) -> datetime:
    """One end of a custom range as a UTC moment."""
    text = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    invalid = ValueError(f"The {which} {text!r} is not a real date and time.")
    if text.isdigit():  # Unix time: seconds, or milliseconds when it has more than 11 digits
        try:
            return datetime.fromtimestamp(int(text) / (1000 if len(text) > 11 else 1), UTC)
        except (OverflowError, OSError, ValueError):
            raise invalid from None
    try:
        moment = parse_datetime(text)
    except ValueError:
        raise invalid from None
    if moment is None:
        raise ValueError(
            f"Enter the custom range as dates and times: could not read the {which} {text!r}; "
            "use ISO 8601 with an offset, e.g. 2026-11-20T08:00-05:00, or Unix seconds."
        )
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 or 9999 moved past the calendar's ends by the offset
        raise ValueError(f"The {which} {text!r} is outside the dates a chart can show (years 1 to 9999).") from None


def default_range(pipeline: Pipeline, at: datetime) -> str:
    """The range a pipeline's page opens on: 24 h, or the shortest that holds all its history when it has less.

    A pipeline registered four hours ago opens on 6 h, so its history fills the charts. Two indexed reads.
    """
    first = MetricSample.objects.filter(pipeline=pipeline).order_by("minute").values_list("minute", flat=True).first()
    if first is None:
        first = MetricRollup.objects.filter(pipeline=pipeline).order_by("hour").values_list("hour", flat=True).first()
    if first is None:
        return "24h"
    held = at - first
    return next((name for name in ("1h", "6h") if RANGES[name] >= held), "24h")


def series(pipeline: Pipeline, start: datetime, end: datetime, range_name: str | None = None) -> dict[str, Any]:
    """Downsampled series for one pipeline over [start, end): one query, ≤ MAX_POINTS per series.

    Times are UTC with their offset; the page shows them in the reader's time zone.
    """
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
    # Buckets align to multiples of their size, except where that would fall before year 1.
    origin = max(int(start.timestamp()) // bucket * bucket, _FIRST_MOMENT)
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
        times.append(datetime.fromtimestamp(origin + i * bucket, tz=UTC).isoformat())
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
        "range": range_name,
        "start": start.astimezone(UTC).isoformat(),
        "end": end.astimezone(UTC).isoformat(),
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
