"""The two collection cycles, AWS → history table.

* the **fast** cycle reads the live backlog with one `GetQueueAttributes` per queue (queue and DLQ)
  and nothing else, concurrently on a bounded thread pool;
* the **metrics** cycle fetches CloudWatch datapoints for every pipeline of an account in as few
  `GetMetricData` calls as the API allows, each query asking for the whole window since the last
  fetch plus an overlap for late data.

After each, the pipelines' trends are refreshed and the alert rules that read its data are
evaluated (`alerting.evaluate`). A failing pipeline records its error and never stops the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction

from pipelines import aws, clock
from pipelines.alerting import evaluate, history, rules
from pipelines.collection.cloudwatch import METRICS, build_queries, fetch, plan_metrics
from pipelines.collection.store import (
    CycleReport,
    database_lost,
    floor_minute,
    pool_map,
    record_cycle,
    upsert_samples,
)
from pipelines.models import AwsAccount, CycleKind, MetricSample, Pipeline

#: The longest gap the metrics cycle closes by itself; older gaps are for `sync_metrics --backfill`.
MAX_CATCH_UP = timedelta(hours=3)


def due_pipelines(account: AwsAccount, at: datetime) -> list[Pipeline]:
    pipes = Pipeline.objects.filter(account=account, enabled=True).order_by("pk")
    return [p for p in pipes if p.is_due(at)]


def run_fast_cycle(
    account: AwsAccount, pipelines: list[Pipeline] | None = None, at: datetime | None = None
) -> CycleReport:
    """Read queue and DLQ counts for the account's due pipelines (or the given ones) and store them."""
    started = clock.now()
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
        results = pool_map(read, jobs)

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
    try:
        with transaction.atomic():
            report.samples_written = upsert_samples(MetricSample, "minute", rows)
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
            recent = history.refresh(pipes, at)
    except DatabaseError as exc:
        report.samples_written = 0
        database_lost(report, pipes, exc)
    else:
        evaluation = evaluate.evaluate_after_sync(pipes, at, recent, rules.FAST, failed=[p.pk for p in failed])
        report.alerts = evaluation.as_dict() if evaluation else {"errors": ["alert evaluation failed (see the log)"]}
    record_cycle(report, account, started, meter)
    return report


def known_empty_dlqs(pipes: list[Pipeline], start: datetime) -> set[int]:
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
    started = clock.now()
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
    empty_dlqs = known_empty_dlqs(pipes, metrics_window(pipes, end, max(s.every for s in METRICS)))
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
        rows, errors = fetch(account, queries, start, end, points)
    try:
        report.samples_written = store_metrics(pipes, specs_by_pipe, rows, errors, end, report)
        recent = history.refresh(pipes, at)  # ages, errors and throttles just arrived
    except DatabaseError as exc:
        database_lost(report, pipes, exc)
    else:
        evaluation = evaluate.evaluate_after_sync(
            pipes, at, recent, rules.METRICS, failed=[p.pk for p in pipes if p.name in report.errors]
        )
        report.alerts = evaluation.as_dict() if evaluation else {"errors": ["alert evaluation failed (see the log)"]}
    record_cycle(report, account, started, meter)
    return report


def store_metrics(
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
        written = upsert_samples(model, key_field, ((pid, ts, v) for (pid, ts), v in rows.items() if pid not in errors))
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
