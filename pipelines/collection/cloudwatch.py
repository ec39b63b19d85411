"""CloudWatch planning and fetching: which metrics each pipeline needs, packed into as few calls as allowed.

`GetMetricData` takes up to 500 queries and 100,800 datapoints per call and is billed per metric
requested, not per datapoint, so each query asks for a whole window of 1-minute points. An endpoint
that rejects percentile statistics (the emulator does) loses them, not the batch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines import aws
from pipelines.collection.store import pool_map
from pipelines.models import AwsAccount, Pipeline

log = logging.getLogger(__name__)
MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800
PERCENTILE = "percentile"


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


def _dlq_name(pipeline: Pipeline) -> str:
    return pipeline.dlq_arn.rsplit(":", 1)[-1] if pipeline.dlq_arn else ""


def dimensions(pipeline: Pipeline, component: str) -> list[dict[str, str]] | None:
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
        if dimensions(pipeline, spec.component) is None:
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
                    "Dimensions": dimensions(pipeline, s.component),
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


def fetch(
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
    for chunk, results, problem in pool_map(run, chunks):
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
