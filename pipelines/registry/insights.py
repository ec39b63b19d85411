"""Pipeline insights: configuration problems read from what discovery stored, each with a one-line fix.

Pure functions over a Pipeline row (no I/O, no queries), so the overview, the admin list and the
pipeline page can show them for free. A check runs only on facts discovery actually found: a field
left empty because AWS could not be read skips the check instead of guessing.

What is judged (severity, worst first):

- no dead-letter queue (critical): a message that keeps failing is retried until the retention
  period deletes it, silently;
- the event-source mapping is disabled (critical): nothing drains the queue. Discovery shows the
  most active mapping on a queue, so a disabled one shown means none is enabled;
- no consumer found (warning): no Lambda event-source mapping reads the queue;
- maxReceiveCount below 5 with a consumer that can be throttled (warning): see `throttle_reason`;
- visibility timeout under 6 × the function timeout (warning): AWS's own guidance, so a batch that
  is retried after a throttle or a slow run is not handed to a second consumer while the first
  still works on it;
- DLQ retention not longer than the source's, on standard queues (warning): a message moved to the
  DLQ keeps its original enqueue time, so it expires there sooner than the DLQ's retention says.
  FIFO queues reset that time on the move, so they are not judged;
- no MaximumConcurrency (warning with reserved concurrency, whose pollers it outruns into throttles;
  info otherwise, when only the account's concurrency pool bounds a burst);
- ReportBatchItemFailures off (warning; not judged at batch size 1): one bad message makes the whole
  batch retry, and the good ones ride along to the DLQ;
- the API's SQS integration does not pass $context.requestId (info): request traces cannot link API
  calls to messages;
- spend anomaly (warning): the cost per 1,000 messages of the pipeline's own traffic (Lambda, SQS,
  API) more than doubled week over week — longer durations after a deploy, or a retry storm. Judged
  only from the week-over-week figures the caller passes (`pipelines.spend.history.week_over_week`,
  None when either week lacks data), so this module still makes no queries;
- a new failure in the DLQ (warning): the latest completed triage scan has a failure group whose
  signature the previous completed scan did not have. Judged only from the two scans the caller
  read (`ScanPair`); nothing is said after a first scan, which has nothing to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import TextChoices

from pipelines.formatting import duration
from pipelines.models import Pipeline, Severity, TriageGroup
from pipelines.spend.history import Spend, week_over_week

#: AWS's guidance for SQS event sources.
MIN_RECEIVE_COUNT = 5
VISIBILITY_FACTOR = 6
MAX_RETENTION = 14 * 86400
#: Mapping states in which nothing is polled (Creating/Enabling/Updating are on their way to polling).
STOPPED_STATES = ("Disabled", "Disabling", "Deleting")
#: The spend anomaly: this week's cost per 1,000 messages above this multiple of last week's.
SPEND_GROWTH = 2.0


class InsightCode(TextChoices):
    NO_DLQ = "no_dlq", "No dead-letter queue"
    MAPPING_DISABLED = "mapping_disabled", "Event-source mapping disabled"
    NO_CONSUMER = "no_consumer", "No consumer"
    MAX_RECEIVE_COUNT = "max_receive_count", "maxReceiveCount below 5 with a throttle-prone consumer"
    VISIBILITY_TIMEOUT = "visibility_timeout", "Visibility timeout under 6 × the function timeout"
    DLQ_RETENTION = "dlq_retention", "DLQ retention not longer than the queue's"
    NO_MAX_CONCURRENCY = "no_max_concurrency", "No MaximumConcurrency"
    NO_BATCH_ITEM_FAILURES = "no_batch_item_failures", "ReportBatchItemFailures off"
    API_REQUEST_ID = "api_request_id", "API does not pass the request id"
    SPEND_ANOMALY = "spend_anomaly", "Cost per 1,000 messages up week over week"
    NEW_DLQ_FAILURE = "new_dlq_failure", "New failure in the DLQ"


@dataclass(frozen=True)
class Insight:
    code: InsightCode
    severity: Severity
    title: str
    fix: str  # one line, concrete: what to set, to what
    detail: str = ""


def throttle_reason(p: Pipeline) -> str:
    """Why the consumer can be throttled, or '' when nothing says it can.

    A throttled invocation returns its batch to the queue and the receive still counts toward
    maxReceiveCount, so throttling alone can push good messages into the DLQ. It is likely when the
    function's reserved concurrency caps it below what the SQS pollers may start (no
    MaximumConcurrency, or one above the reservation), and certain when throttles were seen
    recently. Without a reservation or observed throttles nothing on the row says so: no guess.
    """
    if p.recent_throttles:
        return f"{p.recent_throttles:,} throttle(s) recently"
    if p.reserved_concurrency is None or not p.has_consumer:
        return ""
    if p.maximum_concurrency is None:
        return f"reserved concurrency {p.reserved_concurrency} and no MaximumConcurrency"
    if p.maximum_concurrency > p.reserved_concurrency:
        return f"MaximumConcurrency {p.maximum_concurrency} above reserved concurrency {p.reserved_concurrency}"
    return ""


# --- the checks: each returns an Insight or None -------------------------------------------------


def _no_dlq(p: Pipeline) -> Insight | None:
    if p.dlq_arn or p.dlq_url:
        return None
    return Insight(
        InsightCode.NO_DLQ,
        Severity.CRITICAL,
        "No dead-letter queue: failing messages are retried until the retention period deletes them",
        f"Create a dead-letter queue and give this queue a RedrivePolicy with maxReceiveCount "
        f"{MIN_RECEIVE_COUNT} or more",
    )


def _mapping_disabled(p: Pipeline) -> Insight | None:
    if not p.has_consumer or p.mapping_state not in STOPPED_STATES:
        return None
    state = p.mapping_state.lower()
    title = (
        f"The event-source mapping to {p.function_name} is {state}: nothing drains the queue"
        if not p.extra_mappings
        else f"None of the {p.extra_mappings + 1} event-source mappings on the queue is enabled: "
        "nothing drains the queue"
    )
    fix = (
        f"Enable it: aws lambda update-event-source-mapping --uuid {p.mapping_uuid} --enabled"
        if p.mapping_uuid
        else f"Enable the queue's trigger on {p.function_name} (Configuration → Triggers)"
    )
    return Insight(
        InsightCode.MAPPING_DISABLED,
        Severity.CRITICAL,
        title,
        fix,
        "Messages wait in the queue until the retention period deletes them.",
    )


def _no_consumer(p: Pipeline) -> Insight | None:
    # Consumer discovery runs on the queue's ARN: without one it never looked.
    if p.has_consumer or not p.queue_arn:
        return None
    return Insight(
        InsightCode.NO_CONSUMER,
        Severity.WARNING,
        "No consumer found: no Lambda event-source mapping reads this queue",
        "Add this queue as an SQS trigger (event-source mapping) of the function that processes it",
        "Another kind of consumer (a container polling the queue) is not visible to discovery.",
    )


def _max_receive_count(p: Pipeline) -> Insight | None:
    if p.max_receive_count is None or p.max_receive_count >= MIN_RECEIVE_COUNT:
        return None
    why = throttle_reason(p)
    if not why:
        return None
    return Insight(
        InsightCode.MAX_RECEIVE_COUNT,
        Severity.WARNING,
        f"maxReceiveCount {p.max_receive_count} with a consumer that can be throttled ({why}): "
        "throttled receives count too, so good messages can reach the DLQ",
        f"Set maxReceiveCount to at least {MIN_RECEIVE_COUNT} in the queue's RedrivePolicy",
    )


def _visibility_timeout(p: Pipeline) -> Insight | None:
    if p.visibility_timeout is None or not p.function_timeout:
        return None
    wanted = VISIBILITY_FACTOR * p.function_timeout
    if p.visibility_timeout >= wanted:
        return None
    # In seconds, as the queue and function settings are given.
    if p.visibility_timeout < p.function_timeout:
        title = (
            f"Visibility timeout {p.visibility_timeout:,} s is shorter than the {p.function_timeout:,} s "
            "function timeout: a slow batch is handed to a second consumer"
        )
    else:
        title = (
            f"Visibility timeout {p.visibility_timeout:,} s is under {VISIBILITY_FACTOR} × the "
            f"{p.function_timeout:,} s function timeout: retried batches can be processed twice"
        )
    return Insight(
        InsightCode.VISIBILITY_TIMEOUT,
        Severity.WARNING,
        title,
        f"Set the queue's visibility timeout to at least {wanted:,} s "
        f"({VISIBILITY_FACTOR} × the {p.function_timeout:,} s function timeout)",
    )


def _dlq_retention(p: Pipeline) -> Insight | None:
    # FIFO queues restart the retention clock when a message moves to the DLQ.
    if p.is_fifo or p.dlq_retention_period is None or p.retention_period is None:
        return None
    if p.dlq_retention_period > p.retention_period:
        return None
    if p.dlq_retention_period < MAX_RETENTION:
        fix = (
            f"Set the DLQ's retention period to 14 days (1,209,600 s), longer than the queue's "
            f"{duration(p.retention_period)}"
        )
    else:  # both at the maximum: only the source can give way
        fix = "Shorten the queue's retention period below the DLQ's 14 days, so failed messages arrive with time left"
    return Insight(
        InsightCode.DLQ_RETENTION,
        Severity.WARNING,
        f"DLQ retention {duration(p.dlq_retention_period)} is not longer than the queue's "
        f"{duration(p.retention_period)}: moved messages keep their first enqueue time and can "
        "expire in the DLQ before anyone looks",
        fix,
    )


def _no_max_concurrency(p: Pipeline) -> Insight | None:
    if not p.mapping_uuid or p.maximum_concurrency is not None:
        return None
    if p.reserved_concurrency is not None:
        r = p.reserved_concurrency
        fix = (
            f"Set MaximumConcurrency on the event-source mapping to {r} (no more than the reserved concurrency)"
            if r >= 2
            # MaximumConcurrency is 2–1000
            else "Raise the reserved concurrency to at least 2 and set MaximumConcurrency on the mapping to it"
        )
        return Insight(
            InsightCode.NO_MAX_CONCURRENCY,
            Severity.WARNING,
            f"No MaximumConcurrency on the mapping: the SQS pollers outrun the function's reserved "
            f"concurrency of {r} and get throttled",
            fix,
        )
    return Insight(
        InsightCode.NO_MAX_CONCURRENCY,
        Severity.INFO,
        "No MaximumConcurrency on the mapping: a burst can scale the consumer up to the account's concurrency limit",
        "Set MaximumConcurrency on the event-source mapping (2–1000) to what the consumer's downstream can take",
    )


def _no_batch_item_failures(p: Pipeline) -> Insight | None:
    if p.report_batch_item_failures is not False or p.batch_size == 1:
        return None
    batch = f"batch of {p.batch_size}" if p.batch_size else "batch"
    return Insight(
        InsightCode.NO_BATCH_ITEM_FAILURES,
        Severity.WARNING,
        f"ReportBatchItemFailures is off: one bad message makes the whole {batch} retry",
        "Turn on ReportBatchItemFailures on the event-source mapping and return the failed "
        "message ids as batchItemFailures",
    )


def _api_request_id(p: Pipeline) -> Insight | None:
    if not p.has_api or p.api_passes_request_id is not False:
        return None
    attr = p.request_id_attribute
    if p.api_kind == "http":
        fix = (
            f'Add "{attr}": {{"DataType": "String", "StringValue": "${{context.requestId}}"}} to the '
            "SQS integration's MessageAttributes"
        )
    else:
        fix = (
            f"Add MessageAttribute.1.Name={attr}&MessageAttribute.1.Value.StringValue=$context.requestId"
            "&MessageAttribute.1.Value.DataType=String to the SQS integration's request template"
        )
    return Insight(
        InsightCode.API_REQUEST_ID,
        Severity.INFO,
        f"The API does not pass $context.requestId in the '{attr}' attribute: traces cannot "
        "follow a request into the queue",
        fix,
    )


CHECKS = (
    _no_dlq,
    _mapping_disabled,
    _no_consumer,
    _max_receive_count,
    _visibility_timeout,
    _dlq_retention,
    _no_max_concurrency,
    _no_batch_item_failures,
    _api_request_id,
)


def spend_anomaly(weeks: tuple[float, float] | None) -> Insight | None:
    """(last week's, this week's) cost per 1,000 messages → an insight when it more than doubled."""
    if weeks is None:
        return None
    was, now = weeks
    if was <= 0 or now <= SPEND_GROWTH * was:
        return None
    return Insight(
        InsightCode.SPEND_ANOMALY,
        Severity.WARNING,
        f"Cost per 1,000 messages up {now / was:.1f}× week over week (was ${was:.4f}, now ${now:.4f}): "
        "check durations or retries",
        "Compare the Lambda duration and the received/deleted ratio with last week's: a slower deploy "
        "or a retry storm (throttles, failing batches) bills every message again",
    )


@dataclass(frozen=True)
class ScanPair:
    """A DLQ's two latest completed triage scans, as the caller read them: the latest one's groups, and
    when the previous one ran and which failure signatures it found."""

    groups: tuple[TriageGroup, ...]
    previous_at: datetime
    previous_signatures: frozenset[str]


def new_dlq_failure(pair: ScanPair | None) -> Insight | None:
    """The largest failure group of the latest scan that the previous scan did not have, if any."""
    if pair is None:
        return None
    new = sorted((g for g in pair.groups if g.signature not in pair.previous_signatures), key=lambda g: -g.count)
    if not new:
        return None
    first, others = new[0], new[1:]
    detail = ""
    if others:
        detail = f"{len(others)} more new group(s): " + "; ".join(f"{g.title} ({g.count:,})" for g in others[:3])
    return Insight(
        InsightCode.NEW_DLQ_FAILURE,
        Severity.WARNING,
        f"New failure in the DLQ since the scan of {pair.previous_at:%Y-%m-%d %H:%M} UTC: {first.title} "
        f"({first.count:,} message{'s' if first.count != 1 else ''})",
        "Open the DLQ's triage page, read the group's sample error, fix its cause, then redrive the group",
        detail,
    )


def insights_for(p: Pipeline, spend: Spend | None = None, scans: ScanPair | None = None) -> list[Insight]:
    """Every configuration problem of `p`, worst first; none before discovery has run.

    `spend`, when the caller has read it, adds the spend anomaly; `scans`, the new DLQ failure."""
    if p.discovered_at is None:
        return []
    found = [i for check in CHECKS if (i := check(p)) is not None]
    if spend is not None and (anomaly := spend_anomaly(week_over_week(spend))) is not None:
        found.append(anomaly)
    if (new_failure := new_dlq_failure(scans)) is not None:
        found.append(new_failure)
    return sorted(found, key=lambda i: i.severity.rank)  # stable: checks keep their order within a severity
