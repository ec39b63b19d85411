"""What watching a pipeline costs in AWS API calls, at the configured cadences."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from pipelines.collection.cloudwatch import plan_metrics
from pipelines.models import Pipeline

MONTH_SECONDS = 730 * 3600  # AWS prices a month as 730 hours


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
