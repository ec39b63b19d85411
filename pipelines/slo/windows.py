"""Reading the counts the SLOs need, for any number of pipelines and any window, in three queries.

The last one to two hours come from the minute rows (`MetricSample`): one grouped query for ages,
sends and the API's requests and latencies, one for the DLQ's increases (a window function: each DLQ reading minus the one before). The
hours before come from the hourly rollups (`MetricRollup`'s SLO columns, filled by
`collection.retention.rollup`): one grouped query. Each window ends now; on the rollup side it takes
the hours more than half inside it, so a long window is exact to within half an hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, FloatField, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncHour

from pipelines.models import MetricRollup, MetricSample, Pipeline
from pipelines.slo.compute import BURN_WINDOWS, Counts, Objective, objectives, window_minutes, worst_budget_left

#: A DLQ reading this far before a window counts as the one its first increase is measured from.
PREVIOUS_READING = timedelta(minutes=15)
FIELDS = (
    "age_minutes",
    "late_minutes",
    "dlq_minutes",
    "dlq_arrivals",
    "sent",
    "api_minutes",
    "api_requests",
    "api_5xx_requests",
    "api_latency_minutes",
    "api_slow_minutes",
)
API_FIELDS = FIELDS[5:]
#: The Pipeline fields the objectives read; a caller's `.only()` may leave some out (loaded in one query).
SLO_PIPELINE_FIELDS = (
    "api_id",
    "dlq_url",
    "oldest_age_sla",
    "slo_freshness_target",
    "slo_dlq_max_percent",
    "slo_api_5xx_percent",
    "slo_api_latency_ms",
)


def api_aggregates(within: Q | None = None) -> dict:
    """The API's SLO counts over minute rows (`within` narrows them), named like Counts' fields: the
    minutes with both a request and a 5xx count and their sums, and the minutes with a p99 latency and
    those whose p99 reached the pipeline's threshold (as it is now: rollups keep it as of their hour)."""
    within = within or Q()
    counted = within & Q(api_count__isnull=False, api_5xx__isnull=False)
    threshold = Coalesce(
        F("pipeline__slo_api_latency_ms"), Value(settings.SLO_API_LATENCY_MS), output_field=FloatField()
    )
    return {
        "api_minutes": Count("id", filter=counted),
        "api_requests": Sum("api_count", filter=counted),
        "api_5xx_requests": Sum("api_5xx", filter=counted),
        "api_latency_minutes": Count("id", filter=within & Q(api_latency_p99__isnull=False)),
        "api_slow_minutes": Count("id", filter=within & Q(api_latency_p99__gte=threshold)),
    }


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def recent_start(at: datetime) -> datetime:
    """Where minute rows take over from rollups: the start of the hour before the current one (the
    maintenance task rolls each hour up within minutes of its end)."""
    return floor_hour(at) - timedelta(hours=1)


def all_windows() -> tuple[int, ...]:
    return (*BURN_WINDOWS, window_minutes())


def load(
    pipeline_ids: Iterable[int], at: datetime, windows: Iterable[int] | None = None
) -> dict[int, dict[int, Counts]]:
    """Each pipeline's counts per window (minutes → Counts); a pipeline without data is left out."""
    ids = list(pipeline_ids)
    windows = tuple(windows or all_windows())
    if not ids:
        return {}
    start = recent_start(at)
    parts: dict[int, dict[int, Counts]] = defaultdict(lambda: defaultdict(Counts))
    for pid, per_window in _minutes(ids, at, start, windows).items():
        for w, c in per_window.items():
            parts[pid][w] += c
    long = [w for w in windows if at - timedelta(minutes=w) < start]
    for pid, per_window in _rollups(ids, at, start, long).items():
        for w, c in per_window.items():
            parts[pid][w] += c
    return {pid: {w: per_window[w] for w in windows} for pid, per_window in parts.items()}


def _lower(at: datetime, start: datetime, w: int) -> datetime:
    """Minute rows after this belong to the window (it ends at `at`; rows before `start` are rollups')."""
    return max(at - timedelta(minutes=w), start - timedelta(seconds=1))


def _minutes(ids: list[int], at: datetime, start: datetime, windows: tuple[int, ...]) -> dict[int, dict[int, Counts]]:
    aggregates = {}
    for w in windows:
        after = Q(minute__gt=_lower(at, start, w))
        aggregates[f"age_{w}"] = Count("id", filter=after & Q(oldest_age__isnull=False))
        aggregates[f"late_{w}"] = Count("id", filter=after & Q(oldest_age__gte=F("pipeline__oldest_age_sla")))
        aggregates[f"dlq_{w}"] = Count("id", filter=after & Q(dlq_visible__isnull=False))
        aggregates[f"sent_{w}"] = Sum("sent", filter=after)
        aggregates.update({f"{name}_{w}": agg for name, agg in api_aggregates(after).items()})
    rows = (
        MetricSample.objects.filter(pipeline_id__in=ids, minute__gte=start, minute__lte=at)
        .values("pipeline_id")
        .annotate(**aggregates)
        .order_by()
    )
    arrivals = _dlq_arrivals(ids, at, start, windows)
    out: dict[int, dict[int, Counts]] = {}
    for r in rows:
        pid = r["pipeline_id"]
        out[pid] = {
            w: Counts(
                r[f"age_{w}"],
                r[f"late_{w}"],
                r[f"dlq_{w}"],
                arrivals.get((pid, w), 0),
                r[f"sent_{w}"] or 0,
                **{name: r[f"{name}_{w}"] or 0 for name in API_FIELDS},
            )
            for w in windows
        }
    return out


def _dlq_arrivals(
    ids: list[int], at: datetime, start: datetime, windows: tuple[int, ...]
) -> dict[tuple[int, int], int]:
    """The increases of each pipeline's DLQ count per window: each reading minus the one before it
    (LAG over the readings, which skips minutes without a DLQ count). Decreases (redrives, deletes)
    are not arrivals."""
    adapt = connection.ops.adapt_datetimefield_value
    table = connection.ops.quote_name(MetricSample._meta.db_table)
    sums = ", ".join("SUM(CASE WHEN minute > %s AND grew > 0 THEN grew ELSE 0 END)" for _ in windows)
    marks = ", ".join(["%s"] * len(ids))
    sql = (
        f"SELECT pipeline_id, {sums} FROM ("
        f"SELECT pipeline_id, minute, dlq_visible - LAG(dlq_visible) OVER "
        f"(PARTITION BY pipeline_id ORDER BY minute) AS grew FROM {table} "
        f"WHERE dlq_visible IS NOT NULL AND minute >= %s AND minute <= %s AND pipeline_id IN ({marks})"
        f") d GROUP BY pipeline_id"
    )
    params = [adapt(_lower(at, start, w)) for w in windows]
    params += [adapt(start - PREVIOUS_READING), adapt(at), *ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {(pid, w): int(v or 0) for pid, *values in rows for w, v in zip(windows, values, strict=True)}


def _rollups(ids: list[int], at: datetime, start: datetime, windows: list[int]) -> dict[int, dict[int, Counts]]:
    """The rollup hours of each window: those more than half inside it, before `start`."""
    if not windows:
        return {}
    half = timedelta(minutes=30)
    # An hour rolled up before its DLQ arrivals were counted says nothing about delivery: its sends
    # must not dilute the share (they would read as sent and never failed).
    known = {"sent": Q(dlq_arrivals__isnull=False)}
    aggregates = {
        f"{name}_{w}": Sum(name, filter=Q(hour__gt=at - timedelta(minutes=w) - half) & known.get(name, Q()))
        for w in windows
        for name in FIELDS
    }
    oldest = at - timedelta(minutes=max(windows)) - half
    rows = (
        MetricRollup.objects.filter(pipeline_id__in=ids, hour__gt=oldest, hour__lt=start)
        .values("pipeline_id")
        .annotate(**aggregates)
        .order_by()
    )
    return {r["pipeline_id"]: {w: Counts(*(r[f"{name}_{w}"] or 0 for name in FIELDS)) for w in windows} for r in rows}


def arrivals_by_hour(
    start: datetime, end: datetime, pipeline_ids: list[int] | None = None
) -> dict[tuple[int, datetime], int]:
    """DLQ arrivals per pipeline and hour in [start, end), for the rollups: each DLQ reading minus
    the one before it (from up to PREVIOUS_READING before `start`), increases only."""
    rows = MetricSample.objects.filter(minute__gte=start - PREVIOUS_READING, minute__lt=end, dlq_visible__isnull=False)
    if pipeline_ids is not None:
        rows = rows.filter(pipeline_id__in=pipeline_ids)
    rows = rows.order_by("pipeline_id", "minute").values_list("pipeline_id", "minute", "dlq_visible")
    out: dict[tuple[int, datetime], int] = defaultdict(int)
    last: tuple[int, int] | None = None
    for pid, minute, depth in rows.iterator(chunk_size=5000):
        if last is not None and last[0] == pid and depth > last[1] and minute >= start:
            out[(pid, floor_hour(minute))] += depth - last[1]
        last = (pid, depth)
    return out


def _load_deferred(pipelines: list[Pipeline]) -> None:
    """Fill in the objectives' fields a caller's `.only()` left out, in one query for all (not one each)."""
    missing = sorted({f for p in pipelines for f in p.get_deferred_fields() if f in SLO_PIPELINE_FIELDS})
    if not missing:
        return
    found = {
        pk: values
        for pk, *values in Pipeline.objects.filter(pk__in=[p.pk for p in pipelines]).values_list("pk", *missing)
    }
    for p in pipelines:
        deferred = p.get_deferred_fields()
        for name, value in zip(missing, found.get(p.pk, ()), strict=False):
            if name in deferred:
                setattr(p, name, value)


def objectives_for(pipelines: list[Pipeline], at: datetime, with_burns: bool = False) -> dict[int, list[Objective]]:
    """Each pipeline's objectives over the SLO window (and its burn windows, if asked), in three queries
    (four when the pipelines were read without the fields the objectives need)."""
    _load_deferred(pipelines)
    wanted = all_windows() if with_burns else (window_minutes(),)
    counts = load([p.pk for p in pipelines], at, wanted)
    out = {}
    for p in pipelines:
        found = counts.get(p.pk, {})
        out[p.pk] = objectives(p, found.get(window_minutes()), {w: found[w] for w in BURN_WINDOWS if w in found})
    return out


def budgets_left(pipelines: list[Pipeline], at: datetime) -> dict[int, float | None]:
    """Each pipeline's smallest error budget left, in percent (None: unknown), for the overview."""
    return {pk: worst_budget_left(objs) for pk, objs in objectives_for(pipelines, at).items()}


def hourly(p: Pipeline, at: datetime) -> list[tuple[datetime, Counts]]:
    """One pipeline's counts per hour over the SLO window, oldest first (hours without data left
    out), for the budget chart: its rollups, then its recent minute rows grouped by hour (3 queries)."""
    start = recent_start(at)
    since = at - timedelta(minutes=window_minutes()) - timedelta(minutes=30)
    out: dict[datetime, Counts] = {}
    for hour, *values in MetricRollup.objects.filter(pipeline=p, hour__gt=since, hour__lt=start).values_list(
        "hour", *FIELDS
    ):
        counts = dict(zip(FIELDS, values))
        if counts["dlq_arrivals"] is None:  # rolled up before arrivals were counted: no delivery figure
            counts["sent"] = 0
        out[hour] = Counts(*(counts[name] or 0 for name in FIELDS))
    arrivals = arrivals_by_hour(start, at + timedelta(minutes=1), [p.pk])
    recent = (
        MetricSample.objects.filter(pipeline=p, minute__gte=start, minute__lte=at)
        .annotate(h=TruncHour("minute"))
        .values("h")
        .annotate(
            age=Count("id", filter=Q(oldest_age__isnull=False)),
            late=Count("id", filter=Q(oldest_age__gte=F("pipeline__oldest_age_sla"))),
            dlq=Count("id", filter=Q(dlq_visible__isnull=False)),
            sent_sum=Sum("sent"),
            **api_aggregates(),
        )
        .order_by()
    )
    for r in recent:
        api = {name: r[name] or 0 for name in API_FIELDS}
        out[r["h"]] = Counts(r["age"], r["late"], r["dlq"], arrivals.get((p.pk, r["h"]), 0), r["sent_sum"] or 0, **api)
    return sorted(out.items())
