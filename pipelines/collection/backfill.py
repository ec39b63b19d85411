"""Backfill: history loaded from CloudWatch at the finest period it still keeps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from pipelines import aws, clock
from pipelines.collection.cloudwatch import (
    MAX_DATAPOINTS_PER_CALL,
    MAX_QUERIES_PER_CALL,
    build_queries,
    fetch,
    plan_metrics,
)
from pipelines.collection.cycles import store_metrics
from pipelines.collection.store import CycleReport, floor_hour, floor_minute, record_cycle
from pipelines.models import AwsAccount, CycleKind, MetricRollup, Pipeline


def choose_period(start: datetime, at: datetime) -> int:
    """The finest period CloudWatch still keeps for data starting at `start`."""
    age = at - start
    if age <= timedelta(days=15):
        return 60
    if age <= timedelta(days=63):
        return 300
    return 3600


@dataclass
class Segment:
    start: datetime
    end: datetime
    period: int
    rollup: bool  # written to the hourly rollup table instead of minute rows


def backfill_segments(since: datetime, until: datetime, at: datetime) -> list[Segment]:
    """Split [since, until) where CloudWatch's resolution or our raw retention changes."""
    raw_cutoff = at - timedelta(days=settings.RAW_RETENTION_DAYS)
    cuts = sorted(
        {
            since,
            until,
            *(c for c in (at - timedelta(days=15), at - timedelta(days=63), raw_cutoff) if since < c < until),
        }
    )
    segments = []
    for a, b in zip(cuts, cuts[1:]):
        rollup = b <= raw_cutoff
        period = 3600 if rollup else choose_period(a, at)
        if rollup:
            a, b = floor_hour(a), b
        segments.append(Segment(a, b, period, rollup))
    return segments


def backfill(
    account: AwsAccount,
    pipelines: list[Pipeline],
    since: datetime,
    until: datetime,
    at: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_window: timedelta | None = None,
) -> CycleReport:
    """Load history from CloudWatch for [since, until), at the finest period CloudWatch still keeps.

    Recent data lands in minute rows (1- or 5-minute points), data older than the raw retention
    in hourly rollups. Calls are sized so that each stays within 500 queries and 100,800 points
    (the fewest metrics requested); `max_window` caps the time span of one call instead, for
    endpoints that slow down with large windows, at the cost of more metrics requested.
    """
    started = clock.now()
    at = at or started
    report = CycleReport(kind=CycleKind.BACKFILL, account=account.name, pipelines=len(pipelines))
    if not pipelines or since >= until:
        report.skipped = "nothing to load"
        return report
    specs_by_pipe = {p.pk: plan_metrics(p, account.unsupported_statistics, backfill=True) for p in pipelines}
    # Plan (segment, time chunk) pieces so that calls are as full as the datapoint limit allows.
    pieces = []
    for seg in backfill_segments(since, until, at):
        n_queries = sum(len(s) for s in specs_by_pipe.values())
        per_call = min(MAX_QUERIES_PER_CALL, max(1, n_queries))
        chunk_points = max(1, MAX_DATAPOINTS_PER_CALL // per_call)
        step = timedelta(seconds=seg.period * chunk_points)
        if max_window:
            step = max(timedelta(seconds=seg.period), min(step, max_window))
        t = seg.start
        while t < seg.end:
            pieces.append((seg, t, min(seg.end, t + step)))
            t += step
    with aws.metering() as meter:
        for i, (seg, a, b) in enumerate(pieces):
            # Re-planned per piece: a statistic the endpoint rejected is not asked for again.
            specs_by_pipe = {p.pk: plan_metrics(p, account.unsupported_statistics, backfill=True) for p in pipelines}
            queries = [q for p in pipelines for q in build_queries(p, specs_by_pipe[p.pk], seg.period)]
            points = max(1, math.ceil((b - a).total_seconds() / seg.period))
            rows, errors = fetch(account, queries, a, b, points)
            if seg.rollup:
                rows = {(pid, floor_hour(ts)): v for (pid, ts), v in rows.items()}
                report.samples_written += store_metrics(
                    pipelines, specs_by_pipe, rows, errors, b, report, MetricRollup, "hour"
                )
            else:
                rows = {(pid, floor_minute(ts)): v for (pid, ts), v in rows.items()}
                report.samples_written += store_metrics(pipelines, specs_by_pipe, rows, errors, b, report)
            if progress:
                progress(i + 1, len(pieces))
    record_cycle(report, account, started, meter)
    return report
