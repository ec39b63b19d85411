"""Collection: planning and running sync cycles, AWS → history table.

Two cadences:

* the **fast** cycle reads the live backlog with one `GetQueueAttributes` per queue (queue and DLQ)
  and nothing else, concurrently on a bounded thread pool;
* the **metrics** cycle fetches CloudWatch datapoints for every pipeline of an account in as few
  `GetMetricData` calls as the API allows (≤ 500 queries and ≤ 100,800 datapoints per call). A call
  costs per metric requested, not per datapoint, so each query asks for the whole window since the
  last fetch plus an overlap for late data.

Both write `MetricSample` rows by upsert on (pipeline, minute), so re-running never duplicates, and
each records a `PollCycle` with the calls it made. A failing pipeline records its error and never
stops the others.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from . import alerts, aws, health
from .models import AwsAccount, CycleKind, MetricRollup, MetricSample, Pipeline, PollCounter, PollCycle, now

log = logging.getLogger(__name__)

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800
#: The longest gap the metrics cycle closes by itself; older gaps are for `sync_metrics --backfill`.
MAX_CATCH_UP = timedelta(hours=3)
PERCENTILE = "percentile"
MONTH_SECONDS = 730 * 3600  # AWS prices a month as 730 hours


@dataclass(frozen=True)
class MetricSpec:
    field: str
    namespace: str
    metric: str
    stat: str
    component: str  # queue | dlq | lambda | api
    every: int = 1  # fetched every Nth metrics cycle (slow-moving values), with a window covering the gap

    @property
    def is_percentile(self) -> bool:
        return self.stat.startswith("p")


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("oldest_age", "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", "queue"),
    MetricSpec("sent", "AWS/SQS", "NumberOfMessagesSent", "Sum", "queue"),
    MetricSpec("received", "AWS/SQS", "NumberOfMessagesReceived", "Sum", "queue"),
    MetricSpec("deleted", "AWS/SQS", "NumberOfMessagesDeleted", "Sum", "queue"),
    MetricSpec("empty_receives", "AWS/SQS", "NumberOfEmptyReceives", "Sum", "queue"),
    # A DLQ's retention is measured in days: a 15-minute view of its oldest message loses nothing.
    MetricSpec("dlq_oldest_age", "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", "dlq", every=3),
    MetricSpec("lambda_invocations", "AWS/Lambda", "Invocations", "Sum", "lambda"),
    MetricSpec("lambda_errors", "AWS/Lambda", "Errors", "Sum", "lambda"),
    MetricSpec("lambda_throttles", "AWS/Lambda", "Throttles", "Sum", "lambda"),
    MetricSpec("lambda_duration_avg", "AWS/Lambda", "Duration", "Average", "lambda"),
    MetricSpec("lambda_duration_p99", "AWS/Lambda", "Duration", "p99", "lambda"),
    MetricSpec("lambda_concurrency", "AWS/Lambda", "ConcurrentExecutions", "Maximum", "lambda"),
    MetricSpec("api_count", "AWS/ApiGateway", "Count", "Sum", "api"),
    MetricSpec("api_4xx", "AWS/ApiGateway", "4XXError", "Sum", "api"),
    MetricSpec("api_5xx", "AWS/ApiGateway", "5XXError", "Sum", "api"),
    MetricSpec("api_latency_avg", "AWS/ApiGateway", "Latency", "Average", "api"),
    MetricSpec("api_latency_p99", "AWS/ApiGateway", "Latency", "p99", "api"),
)
#: Queue levels come from GetQueueAttributes live; for the past, CloudWatch is the only source.
BACKFILL_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("visible", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "queue"),
    MetricSpec("in_flight", "AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "Maximum", "queue"),
    MetricSpec("delayed", "AWS/SQS", "ApproximateNumberOfMessagesDelayed", "Maximum", "queue"),
    MetricSpec("dlq_visible", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "dlq"),
)
ALL_METRICS = METRICS + BACKFILL_METRICS
#: HTTP APIs (API Gateway v2) publish their error counts under other names than REST APIs.
HTTP_API_METRIC_NAMES = {"4XXError": "4xx", "5XXError": "5xx"}
FLOAT_FIELDS = {"lambda_duration_avg", "lambda_duration_p99", "api_latency_avg", "api_latency_p99"}


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


# --- reports -------------------------------------------------------------------------------------


@dataclass
class CycleReport:
    """What one cycle did for one account: returned to tasks and commands, saved as a PollCycle."""

    kind: str
    account: str
    pipelines: int = 0
    samples_written: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # pipeline name -> reason
    calls: dict[str, int] = field(default_factory=dict)
    metrics_requested: int = 0
    seconds: float = 0.0
    skipped: str = ""  # why the cycle did not run (lock held, nothing due)
    alerts: dict[str, Any] = field(default_factory=dict)  # what the alert evaluation after it did

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "account": self.account,
            "pipelines": self.pipelines,
            "samples_written": self.samples_written,
            "failed": len(self.errors),
            "errors": self.errors,
            "api_calls": self.api_calls,
            "calls": self.calls,
            "metrics_requested": self.metrics_requested,
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
            "alerts": self.alerts,
        }


def _record(report: CycleReport, account: AwsAccount | None, started: datetime, meter: aws.CallMeter) -> None:
    report.calls = dict(meter.calls)
    report.metrics_requested = meter.metrics_requested
    finished = now()
    report.seconds = (finished - started).total_seconds()
    with transaction.atomic():
        PollCycle.objects.create(
            kind=report.kind,
            account=account,
            started_at=started,
            finished_at=finished,
            pipelines=report.pipelines,
            failed=len(report.errors),
            samples_written=report.samples_written,
            api_calls=report.api_calls,
            calls=report.calls,
            metrics_requested=report.metrics_requested,
            errors=[f"{name}: {reason}" for name, reason in list(report.errors.items())[:50]],
        )
        # Running totals for /metrics, per account (every cycle has one). Several workers may finish
        # cycles at once: missing rows are created with ON CONFLICT DO NOTHING, then each row is
        # incremented in the database, in a fixed order so two transactions never wait on each
        # other's rows crosswise.
        if account is not None:
            increments = {**report.calls, "metrics_requested": report.metrics_requested}
            operations = sorted(increments)
            PollCounter.objects.bulk_create(
                [PollCounter(account=account, operation=op) for op in operations], ignore_conflicts=True
            )
            for op in operations:
                if increments[op]:
                    PollCounter.objects.filter(account=account, operation=op).update(total=F("total") + increments[op])


def _pool_map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """Run fn over items on a bounded thread pool, each call in a copy of this context (metering)."""
    if not items:
        return []
    workers = max(1, min(settings.COLLECT_CONCURRENCY, len(items)))
    if workers == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="collect") as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, item) for item in items]
        return [f.result() for f in futures]


def _upsert_samples(
    model, key_field: str, rows: Iterable[tuple[int, datetime, dict[str, Any]]], batch_size: int = 2000
) -> int:
    """Upsert (pipeline, key) rows, updating only the fields each row carries.

    Rows are grouped by their set of fields so one statement never nulls a column another
    cadence owns (the fast cycle's counts vs the metrics cycle's CloudWatch values).
    """
    groups: dict[tuple[str, ...], list] = defaultdict(list)
    for pipeline_id, key, values in rows:
        groups[tuple(sorted(values))].append(model(pipeline_id=pipeline_id, **{key_field: key}, **values))
    written = 0
    for fields, objs in groups.items():
        if not fields:
            continue
        model.objects.bulk_create(
            objs,
            batch_size=batch_size,
            update_conflicts=True,
            unique_fields=["pipeline", key_field],
            update_fields=list(fields),
        )
        written += len(objs)
    return written


# --- fast cycle ----------------------------------------------------------------------------------


def due_pipelines(account: AwsAccount, at: datetime) -> list[Pipeline]:
    pipes = Pipeline.objects.filter(account=account, enabled=True).order_by("pk")
    return [p for p in pipes if p.is_due(at)]


def run_fast_cycle(
    account: AwsAccount, pipelines: list[Pipeline] | None = None, at: datetime | None = None
) -> CycleReport:
    """Read queue and DLQ counts for the account's due pipelines (or the given ones) and store them."""
    started = now()
    at = at or started
    pipes = pipelines if pipelines is not None else due_pipelines(account, at)
    report = CycleReport(kind=CycleKind.FAST, account=account.name, pipelines=len(pipes))
    if not pipes:
        report.skipped = "no pipeline due"
        return report
    target = account.target()
    jobs = [(p, role, url) for p in pipes for role, url in (("queue", p.queue_url), ("dlq", p.dlq_url)) if url]

    def read(job):
        _, _, url = job
        try:
            return aws.queue_counts(target, url)
        except aws.AwsError as exc:
            return exc

    with aws.metering() as meter:
        results = _pool_map(read, jobs)

    by_pipe: dict[int, dict[str, Any]] = defaultdict(dict)
    for (p, role, _), res in zip(jobs, results):
        by_pipe[p.pk][role] = res
    minute = floor_minute(at)
    rows, ok, failed = [], [], []
    for p in pipes:
        queue, dlq = by_pipe[p.pk].get("queue"), by_pipe[p.pk].get("dlq")
        problems = [f"queue: {queue}"] if isinstance(queue, aws.AwsError) else []
        if isinstance(dlq, aws.AwsError):
            problems.append(f"DLQ: {dlq}")
        values: dict[str, Any] = {}
        if isinstance(queue, dict):
            values.update(visible=queue["visible"], in_flight=queue["in_flight"], delayed=queue["delayed"])
            p.backlog, p.in_flight, p.delayed = queue["visible"], queue["in_flight"], queue["delayed"]
        if isinstance(dlq, dict):
            values["dlq_visible"] = p.dlq_depth = dlq["visible"]
        if values:
            rows.append((p.pk, minute, values))
        if problems:
            reason = "; ".join(problems)
            report.errors[p.name] = reason
            p.last_error, p.last_error_at = reason, at
            p.consecutive_failures += 1
            failed.append(p)
        else:
            p.last_sync_at, p.last_error, p.consecutive_failures = at, "", 0
            ok.append(p)
    with transaction.atomic():
        report.samples_written = _upsert_samples(MetricSample, "minute", rows)
        Pipeline.objects.bulk_update(
            ok,
            ["backlog", "in_flight", "delayed", "dlq_depth", "last_sync_at", "last_error", "consecutive_failures"],
            batch_size=500,
        )
        Pipeline.objects.bulk_update(
            failed,
            ["backlog", "in_flight", "delayed", "dlq_depth", "last_error", "last_error_at", "consecutive_failures"],
            batch_size=500,
        )
        history = health.refresh(pipes, at)
    evaluation = alerts.evaluate_after_sync(pipes, at, history, alerts.FAST, failed=[p.pk for p in failed])
    report.alerts = evaluation.as_dict() if evaluation else {"errors": ["alert evaluation failed (see the log)"]}
    _record(report, account, started, meter)
    return report


# --- metrics cycle -------------------------------------------------------------------------------


def _dlq_name(pipeline: Pipeline) -> str:
    return pipeline.dlq_arn.rsplit(":", 1)[-1] if pipeline.dlq_arn else ""


def _dimensions(pipeline: Pipeline, component: str) -> list[dict[str, str]] | None:
    if component == "queue":
        return [{"Name": "QueueName", "Value": pipeline.queue_name}] if pipeline.queue_name else None
    if component == "dlq":
        return [{"Name": "QueueName", "Value": _dlq_name(pipeline)}] if pipeline.dlq_arn else None
    if component == "lambda":
        return [{"Name": "FunctionName", "Value": pipeline.function_name}] if pipeline.function_name else None
    if component == "api" and pipeline.api_id:
        stage = [{"Name": "Stage", "Value": pipeline.api_stage}] if pipeline.api_stage else []
        if pipeline.api_kind == "http":
            return [{"Name": "ApiId", "Value": pipeline.api_id}, *stage]
        return [{"Name": "ApiName", "Value": pipeline.api_name or pipeline.api_id}, *stage]
    return None


def plan_metrics(
    pipeline: Pipeline,
    unsupported: Iterable[str] = (),
    dlq_empty: bool = False,
    backfill: bool = False,
    cycle: int | None = None,
) -> list[MetricSpec]:
    """The CloudWatch metrics worth requesting for one pipeline.

    Components the pipeline lacks are left out, statistics the endpoint rejected are left out, the
    DLQ's oldest-message age is not requested while the fast cycle saw the DLQ empty throughout
    the window (an empty queue has no oldest message, so the answer is already known), and a
    slow-moving metric is requested only on every Nth cycle (`cycle` numbers the metrics cycle;
    None plans them all, as a backfill does).
    """
    skip_percentiles = PERCENTILE in unsupported
    out = []
    for spec in ALL_METRICS if backfill else METRICS:
        if skip_percentiles and spec.is_percentile:
            continue
        if spec.component == "dlq" and dlq_empty:
            continue
        if cycle is not None and cycle % spec.every:
            continue
        if _dimensions(pipeline, spec.component) is None:
            continue
        out.append(spec)
    return out


def query_id(pipeline_id: int, spec_index: int) -> str:
    return f"p{pipeline_id}_{spec_index}"


def parse_query_id(qid: str) -> tuple[int, MetricSpec]:
    pid, idx = qid[1:].split("_")
    return int(pid), ALL_METRICS[int(idx)]


def build_queries(pipeline: Pipeline, specs: list[MetricSpec], period: int) -> list[dict[str, Any]]:
    index = {s: i for i, s in enumerate(ALL_METRICS)}
    http_api = pipeline.api_kind == "http"
    return [
        {
            "Id": query_id(pipeline.pk, index[s]),
            "MetricStat": {
                "Metric": {
                    "Namespace": s.namespace,
                    "MetricName": HTTP_API_METRIC_NAMES.get(s.metric, s.metric)
                    if http_api and s.component == "api"
                    else s.metric,
                    "Dimensions": _dimensions(pipeline, s.component),
                },
                "Period": period,
                "Stat": s.stat,
            },
            "ReturnData": True,
        }
        for s in specs
    ]


def chunk_queries(queries: list[dict[str, Any]], points_per_query: int) -> list[list[dict[str, Any]]]:
    """Split queries into calls of ≤ 500 queries and ≤ 100,800 datapoints each."""
    per_call = max(1, min(MAX_QUERIES_PER_CALL, MAX_DATAPOINTS_PER_CALL // max(1, points_per_query)))
    return [queries[i : i + per_call] for i in range(0, len(queries), per_call)]


def _value(spec: MetricSpec, v: float) -> float | int:
    return float(v) if spec.field in FLOAT_FIELDS else int(round(v))


def _fetch(
    account: AwsAccount, queries: list[dict[str, Any]], start: datetime, end: datetime, points: int
) -> tuple[dict[tuple[int, datetime], dict[str, Any]], dict[int, str]]:
    """Fetch all queries in as few calls as allowed. Returns rows by (pipeline, time) and errors by pipeline.

    When the endpoint fails a call that holds percentile statistics with a server error (moto does
    for every p99 query), percentiles are remembered as unsupported on the account and the call is
    retried without them, so the rest of the batch is not lost.
    """
    target = account.target()
    chunks = chunk_queries(queries, points)

    def run(chunk):
        try:
            return chunk, aws.metric_data(target, chunk, start, end), None
        except aws.AwsError as exc:
            if exc.status and exc.status >= 500 and any(q["MetricStat"]["Stat"].startswith("p") for q in chunk):
                kept = [q for q in chunk if not q["MetricStat"]["Stat"].startswith("p")]
                try:
                    results = aws.metric_data(target, kept, start, end) if kept else []
                except aws.AwsError as exc2:
                    return chunk, None, exc2
                return chunk, results, PERCENTILE
            return chunk, None, exc

    rows: dict[tuple[int, datetime], dict[str, Any]] = defaultdict(dict)
    errors: dict[int, str] = {}
    percentiles_rejected = False
    for chunk, results, problem in _pool_map(run, chunks):
        if problem == PERCENTILE:
            percentiles_rejected = True
        elif problem is not None:
            for q in chunk:
                errors[parse_query_id(q["Id"])[0]] = str(problem)
            continue
        for r in results:
            pid, spec = parse_query_id(r["Id"])
            for ts, v in zip(r["Timestamps"], r["Values"]):
                rows[(pid, ts.astimezone(UTC))][spec.field] = _value(spec, v)
    if percentiles_rejected and PERCENTILE not in account.unsupported_statistics:
        log.warning(
            "CloudWatch at %s rejects percentile statistics; leaving them out for account %s",
            account.endpoint_url or "AWS",
            account.name,
        )
        account.unsupported_statistics = [*account.unsupported_statistics, PERCENTILE]
        AwsAccount.objects.filter(pk=account.pk).update(unsupported_statistics=account.unsupported_statistics)
    return rows, errors


def _known_empty_dlqs(pipes: list[Pipeline], start: datetime) -> set[int]:
    """Pipelines whose DLQ the fast cycle saw empty in every sample since `start` (one query)."""
    candidates = [p.pk for p in pipes if p.dlq_arn and p.dlq_depth == 0]
    if not candidates:
        return set()
    nonempty = set(
        MetricSample.objects.filter(pipeline_id__in=candidates, minute__gte=start, dlq_visible__gt=0)
        .values_list("pipeline_id", flat=True)
        .distinct()
    )
    return set(candidates) - nonempty


def cycle_number(end: datetime) -> int:
    """The metrics cycle's number on the clock, so every worker agrees which cycle fetches what."""
    return int(end.timestamp() // settings.METRICS_INTERVAL_SECONDS)


def metrics_window(pipes: list[Pipeline], end: datetime, spans: int = 1) -> datetime:
    """One window for the whole account: since the earliest pipeline's last fetch, minus the overlap.

    `spans` widens it to cover that many intervals, so a metric fetched every Nth cycle has no gap.
    """
    overlap = timedelta(seconds=settings.METRICS_OVERLAP_SECONDS)
    interval = timedelta(seconds=settings.METRICS_INTERVAL_SECONDS)
    start = min((p.metrics_synced_until or end - interval) for p in pipes)
    start = min(start, end - spans * interval) - overlap
    return max(start, end - MAX_CATCH_UP)


def run_metrics_cycle(
    account: AwsAccount, pipelines: list[Pipeline] | None = None, at: datetime | None = None
) -> CycleReport:
    """Fetch CloudWatch metrics for the account's enabled pipelines (or the given ones) and store them."""
    started = now()
    at = at or started
    pipes = (
        pipelines
        if pipelines is not None
        else list(Pipeline.objects.filter(account=account, enabled=True).order_by("pk"))
    )
    report = CycleReport(kind=CycleKind.METRICS, account=account.name, pipelines=len(pipes))
    if not pipes:
        report.skipped = "no pipeline"
        return report
    end = floor_minute(at)
    cycle = cycle_number(end)
    start = metrics_window(pipes, end)
    empty_dlqs = _known_empty_dlqs(pipes, metrics_window(pipes, end, max(s.every for s in METRICS)))
    specs_by_pipe = {
        p.pk: plan_metrics(p, account.unsupported_statistics, p.pk in empty_dlqs, cycle=cycle) for p in pipes
    }
    # A metric fetched every Nth cycle needs a window reaching back over the cycles it skipped.
    spans = max((s.every for specs in specs_by_pipe.values() for s in specs), default=1)
    if spans > 1:
        start = metrics_window(pipes, end, spans)
    queries = [q for p in pipes for q in build_queries(p, specs_by_pipe[p.pk], 60)]
    points = max(1, int((end - start).total_seconds() // 60))
    with aws.metering() as meter:
        rows, errors = _fetch(account, queries, start, end, points)
    report.samples_written = _store(pipes, specs_by_pipe, rows, errors, end, report)
    history = health.refresh(pipes, at)  # ages, errors and throttles just arrived
    evaluation = alerts.evaluate_after_sync(
        pipes, at, history, alerts.METRICS, failed=[p.pk for p in pipes if p.name in report.errors]
    )
    report.alerts = evaluation.as_dict() if evaluation else {"errors": ["alert evaluation failed (see the log)"]}
    _record(report, account, started, meter)
    return report


def _store(
    pipes,
    specs_by_pipe,
    rows,
    errors,
    end: datetime,
    report: CycleReport,
    model=MetricSample,
    key_field: str = "minute",
) -> int:
    """Write fetched rows and update each pipeline's metrics state."""
    latest_age: dict[int, tuple[datetime, int]] = {}
    for (pid, ts), values in rows.items():
        if "oldest_age" in values and (pid not in latest_age or ts > latest_age[pid][0]):
            latest_age[pid] = (ts, values["oldest_age"])
    by_name = {p.pk: p for p in pipes}
    for pid, reason in errors.items():
        report.errors[by_name[pid].name] = f"metrics: {reason}"
    with transaction.atomic():
        written = _upsert_samples(
            model, key_field, ((pid, ts, v) for (pid, ts), v in rows.items() if pid not in errors)
        )
        if model is MetricSample:
            updated = []
            for p in pipes:
                if p.pk in errors:
                    p.metrics_error = errors[p.pk]
                else:
                    p.metrics_error, p.metrics_synced_until = "", max(end, p.metrics_synced_until or end)
                    if p.pk in latest_age:
                        p.oldest_age = latest_age[p.pk][1]
                updated.append(p)
            Pipeline.objects.bulk_update(
                updated, ["metrics_error", "metrics_synced_until", "oldest_age"], batch_size=500
            )
    return written


# --- backfill ------------------------------------------------------------------------------------


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
    started = now()
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
            rows, errors = _fetch(account, queries, a, b, points)
            if seg.rollup:
                rows = {(pid, floor_hour(ts)): v for (pid, ts), v in rows.items()}
                report.samples_written += _store(
                    pipelines, specs_by_pipe, rows, errors, b, report, MetricRollup, "hour"
                )
            else:
                rows = {(pid, floor_minute(ts)): v for (pid, ts), v in rows.items()}
                report.samples_written += _store(pipelines, specs_by_pipe, rows, errors, b, report)
            if progress:
                progress(i + 1, len(pieces))
    _record(report, account, started, meter)
    return report


# --- cost ----------------------------------------------------------------------------------------


def monthly_cost(pipeline: Pipeline, unsupported: Iterable[str] = ()) -> dict[str, float]:
    """Estimated AWS API cost of watching one pipeline for a month at the configured cadences.

    SQS: one GetQueueAttributes per queue per poll interval. CloudWatch: the metrics requested per
    metrics cycle, each at its own cadence (the DLQ's age counted as when the DLQ holds messages:
    the upper bound).
    """
    queues = 1 + (1 if pipeline.dlq_url else 0)
    sqs_calls = queues * MONTH_SECONDS / max(pipeline.poll_interval, settings.FAST_INTERVAL_SECONDS)
    cycles = MONTH_SECONDS / settings.METRICS_INTERVAL_SECONDS
    metrics = sum(cycles / spec.every for spec in plan_metrics(pipeline, unsupported))
    sqs = sqs_calls * settings.SQS_PRICE_PER_MILLION / 1e6
    cw = metrics * settings.CLOUDWATCH_PRICE_PER_THOUSAND_METRICS / 1e3
    return {"sqs_calls": sqs_calls, "metrics_requested": metrics, "sqs": sqs, "cloudwatch": cw, "total": sqs + cw}


# --- on demand -----------------------------------------------------------------------------------


def sync_pipelines(
    pipelines: Iterable[Pipeline], fast: bool = True, metrics: bool = True, at: datetime | None = None
) -> list[CycleReport]:
    """Run the chosen cycles now for the given pipelines, one cycle per account (commands, admin)."""
    by_account: dict[int, list[Pipeline]] = defaultdict(list)
    accounts: dict[int, AwsAccount] = {}
    for p in pipelines:
        by_account[p.account_id].append(p)
        accounts[p.account_id] = p.account
    reports = []
    for account_id, pipes in by_account.items():
        if fast:
            reports.append(run_fast_cycle(accounts[account_id], pipes, at=at))
        if metrics:
            reports.append(run_metrics_cycle(accounts[account_id], pipes, at=at))
    return reports
