"""DLQ triage: which failures are the messages in a dead-letter queue?

`start_scan` records a `TriageScan` (the database allows one active scan per DLQ) and hands it to a
worker once committed. `run_scan`, on the worker, claims it (compare-and-set pending → running) and:

1. receives the whole DLQ up to the scan's cap (`peek.scan`: every message held invisible until the
   scan ends, then all made visible again; messages someone else deleted meanwhile are counted as
   gone), keeping of each message only its ids, send time, receive count and body shape, and saving
   `examined` and a heartbeat every few hundred messages for the progress bar;
2. joins each message to its last failure in the consumer's log (`logjoin`: a few FilterLogEvents
   calls per time window, not per message);
3. groups the messages by failure signature (`grouping`, `signatures`) and stores the groups, with
   each group's count in the pipeline's previous completed scan, and one row per message.

A log group that is missing or denied does not fail the scan: its messages are grouped by body
shape and `TriageScan.sources` says which source failed and why. A running scan whose heartbeat is
older than STALE_SECONDS (its worker died) is marked failed by the maintenance task, or when a new
scan of the DLQ is asked for. Only the newest TRIAGE_KEEP_SCANS scans of a pipeline keep their
message rows; older scans keep their groups, so the counts can still be compared over time.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from pipelines import aws, clock, jobs
from pipelines.dlq import logjoin, peek
from pipelines.dlq.grouping import Examined, Group, group_messages, moment
from pipelines.dlq.logjoin import LogRead, last_failures, plan_windows, read_failures, window_ms
from pipelines.dlq.queues import RedriveError, queue_problem
from pipelines.dlq.signatures import ERROR, SHAPE, shape_signature, short_title
from pipelines.models import (
    ACTIVE_TRIAGE_STATUSES,
    AuditAction,
    AuditEntry,
    GroupKind,
    Pipeline,
    TriageGroup,
    TriageMessage,
    TriageScan,
    TriageStatus,
)

log = logging.getLogger(__name__)
#: A running scan with no heartbeat for this long has lost its worker.
STALE_SECONDS = 300
#: Progress is saved after this many more messages, or this many seconds, whichever comes first.
PROGRESS_EVERY = 250
PROGRESS_SECONDS = 10
#: Causes named in a one-line summary before "…".
SUMMARY_CAUSES = 3
SUMMARY_LABEL_CHARS = 48
monotonic = time.monotonic  # module-level so tests can make time pass


class Abandoned(Exception):
    """The scan's row is no longer running (it was declared stale): this worker stops."""


# --- starting ------------------------------------------------------------------------------------


def _username(user) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else ""


def start_scan(pipeline: Pipeline, user=None, cap: int | None = None) -> TriageScan:
    """Record a scan of the pipeline's DLQ and run it on a worker once committed.

    RedriveError (with a sentence for the operator) when there is no DLQ, the cap is out of range,
    or a scan of this DLQ is already active.
    """
    if not pipeline.dlq_url:
        raise RedriveError(f"{pipeline.name} has no dead-letter queue: there is nothing to triage.")
    limit = settings.TRIAGE_SCAN_MAX
    if cap is not None and not 1 <= cap <= limit:
        raise RedriveError(f"A scan examines from 1 to {limit:,} messages (TRIAGE_SCAN_MAX); {cap:,} is out of range.")
    recover_stale(pipeline)
    scan = TriageScan(
        pipeline=pipeline,
        requested_by=user if getattr(user, "pk", None) else None,
        requested_by_name=_username(user),
        cap=cap or limit,
    )
    try:
        with transaction.atomic():
            scan.save()
    except IntegrityError:
        active = TriageScan.objects.filter(pipeline=pipeline, status__in=ACTIVE_TRIAGE_STATUSES).first()
        if active is None:
            raise
        who = f" by {active.requested_by_name}" if active.requested_by_name else ""
        raise RedriveError(
            f"A scan of this dead-letter queue is already {active.get_status_display().lower()}: #{active.pk}, "
            f"started{who} at {active.created_at:%Y-%m-%d %H:%M:%S} UTC. Wait for it to finish; nothing new was started."
        ) from None
    log.info("triage scan #%s of %s by %s (cap %d)", scan.pk, pipeline.name, scan.requested_by_name, scan.cap)
    transaction.on_commit(lambda: jobs.submit(jobs.RUN_TRIAGE_SCAN, scan.pk))
    return scan


def recover_stale(pipeline: Pipeline | None = None) -> list[int]:
    """Mark failed the running scans whose worker stopped beating, and pending scans no worker took,
    for STALE_SECONDS (of one pipeline, or all). Compare-and-set: a scan that beats meanwhile stays."""
    at = clock.now()
    cutoff = at - timedelta(seconds=STALE_SECONDS)
    minutes = STALE_SECONDS // 60
    reasons = (
        (
            Q(status=TriageStatus.RUNNING) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)),
            f"The scan stopped making progress (no heartbeat for {minutes} minutes): its worker stopped. "
            "Messages it held come back on their own when their hold runs out.",
        ),
        (
            Q(status=TriageStatus.PENDING, created_at__lt=cutoff),
            f"No worker started the scan within {minutes} minutes: are the Celery workers running?",
        ),
    )
    failed: list[int] = []
    for condition, reason in reasons:
        rows = TriageScan.objects.filter(condition)
        if pipeline is not None:
            rows = rows.filter(pipeline=pipeline)
        for pk in rows.values_list("pk", flat=True):
            if TriageScan.objects.filter(condition, pk=pk).update(
                status=TriageStatus.FAILED, finished_at=at, error=reason
            ):
                log.warning("triage scan #%s marked failed: %s", pk, reason)
                failed.append(pk)
    return failed


# --- running -------------------------------------------------------------------------------------


class _Progress:
    """Saves `examined` and the heartbeat on the row now and then; Abandoned when the row moved on."""

    def __init__(self, scan_id: int):
        self.scan_id = scan_id
        self.saved_count = 0
        self.saved_at = monotonic()

    def __call__(self, examined: int | None = None) -> None:
        due = monotonic() - self.saved_at >= PROGRESS_SECONDS
        if examined is not None and examined - self.saved_count >= PROGRESS_EVERY:
            due = True
        if due:
            self.save(examined)

    def save(self, examined: int | None = None, **fields) -> None:
        if examined is not None:
            fields["examined"] = examined
            self.saved_count = examined
        self.saved_at = monotonic()
        if not TriageScan.objects.filter(pk=self.scan_id, status=TriageStatus.RUNNING).update(
            heartbeat_at=clock.now(), **fields
        ):
            raise Abandoned


def _collector(into: list[Examined]):
    """A `keep` for peek.scan that records what triage needs of each message and keeps no body."""

    def keep(m: peek.PeekedMessage) -> bool:
        into.append(
            Examined(
                message_id=m.id,
                request_id=m.request_id or "",
                sent_ms=int(m.sent_at.timestamp() * 1000) if m.sent_at else None,
                receive_count=m.receive_count,
                group_id=m.group_id,
                shape=shape_signature(m.body),
            )
        )
        return False

    return keep


def _log_source(exc: aws.AwsError, group: str) -> str:
    if exc.is_missing:
        return f"The log group {group} does not exist: messages are grouped by body shape."
    if exc.is_denied:
        return f"Reading the log group {group} was denied ({exc}): messages are grouped by body shape."
    return f"Reading the log group {group} failed ({exc}): messages not yet joined are grouped by body shape."


def _join(scan: TriageScan, examined: list[Examined], beat: _Progress) -> tuple[dict, dict]:
    """Each message's last failure line, and the consumer log's source entry."""
    pipeline = scan.pipeline
    group = pipeline.consumer_log_group
    if not group:
        return {}, {"source": "consumer log", "ok": False, "message": "The pipeline has no consumer log group."}
    name = f"consumer log {group}"
    length = window_ms(
        pipeline.max_receive_count,
        pipeline.visibility_timeout,
        pipeline.function_timeout,
        settings.TRIAGE_WINDOW_MAX_SECONDS,
    )
    now_ms = int(clock.now().timestamp() * 1000)
    windows = plan_windows([m.sent_ms for m in examined if m.sent_ms is not None], length, now_ms)
    read = LogRead(max_calls=settings.TRIAGE_LOG_CALLS, page_size=logjoin.PAGE_SIZE)
    source = {"source": name, "ok": True, "message": "", "windows": len(windows), "calls": 0}
    try:
        read_failures(pipeline.account.target(), group, windows, read, beat)
    except aws.AwsError as exc:
        source.update(ok=False, message=_log_source(exc, group))
    source.update(calls=read.calls, windows_read=read.windows_read, lines=len(read.lines))
    if read.truncated:
        source.update(
            ok=False,
            message=(
                f"The read was cut short by the scan's budget of {read.max_calls} FilterLogEvents calls "
                f"(TRIAGE_LOG_CALLS): {read.windows_read} of {len(windows)} time windows read, newest first; "
                "messages not joined are grouped by body shape."
            ),
        )
    elif source["ok"]:
        source["message"] = f"{len(read.lines):,} failure lines read in {len(windows)} time windows."
    requests: dict[str, list[str]] = {}
    for m in examined:
        if m.request_id:
            requests.setdefault(m.request_id, []).append(m.message_id)
    return last_failures(read.lines, (m.message_id for m in examined), requests), source


def _dlq_source(pipeline: Pipeline, result: peek.Scan) -> dict:
    name = f"DLQ {pipeline.dlq_url.rstrip('/').rsplit('/', 1)[-1]}"
    if result.error:
        return {"source": name, "ok": False, "message": result.error}
    text = f"{result.examined:,} messages examined" + (
        f", {result.gone:,} deleted during the scan" if result.gone else ""
    )
    return {"source": name, "ok": True, "message": text + "."}


def run_scan(scan_id: int, meter: aws.CallMeter | None = None) -> TriageScan | None:
    """Run a pending scan to its end (None when it was not pending: another worker has it).

    Its AWS calls are counted on `meter` when one is given (benchmarks and tests read it by API)."""
    at = clock.now()
    if not TriageScan.objects.filter(pk=scan_id, status=TriageStatus.PENDING).update(
        status=TriageStatus.RUNNING, started_at=at, heartbeat_at=at
    ):
        return None
    scan = TriageScan.objects.select_related("pipeline__account", "requested_by").get(pk=scan_id)
    beat = _Progress(scan_id)
    examined: list[Examined] = []
    try:
        with aws.metering(meter) as counting:
            _run(scan, beat, examined, counting, Counter(counting.calls))
    except Abandoned:
        log.warning("triage scan #%s was declared stale while it ran; its results are dropped", scan_id)
    except Exception as exc:
        log.exception("triage scan #%s failed", scan_id)
        _finish_failed(scan, f"The scan failed: {exc}", len(examined))
    scan.refresh_from_db()
    return scan


def _run(scan: TriageScan, beat: _Progress, examined: list[Examined], meter: aws.CallMeter, before: Counter) -> None:
    pipeline = scan.pipeline
    target = pipeline.account.target()
    try:
        depth = sum(aws.queue_counts(target, pipeline.dlq_url).values())
    except aws.AwsError as exc:
        _finish_failed(scan, queue_problem(exc, pipeline.dlq_url, "the DLQ"), 0)
        return
    beat.save(depth_at_start=depth)
    seconds = settings.TRIAGE_SCAN_SECONDS
    result = peek.scan(
        pipeline,
        scan.cap,
        _collector(examined),
        seconds,
        hold=seconds + peek.RELEASE_MARGIN_SECONDS,
        progress=beat,
    )
    if result.error and not examined:
        _finish_failed(scan, result.error, 0)
        return
    beat.save(result.examined)
    failures, log_source = _join(scan, examined, beat)
    groups = group_messages(examined, failures)
    fields = {
        "examined": result.examined,
        "joined": len(failures),
        "gone": result.gone,
        "complete": result.complete,
        "stopped": result.stopped,
        "left": result.left,
        "sources": [_dlq_source(pipeline, result), log_source],
        "sqs_calls": _calls(meter, before, "sqs:"),
        "log_calls": _calls(meter, before, "cloudwatch-logs:"),
    }
    _store(scan, groups, fields)
    _audit(scan, result.examined)
    prune(pipeline)


def _calls(meter: aws.CallMeter, before: Counter, prefix: str) -> int:
    """The calls to one service made since `before` was taken."""
    return sum(n - before[key] for key, n in meter.calls.items() if key.startswith(prefix))


def _previous_counts(scan: TriageScan) -> dict[str, int]:
    previous = (
        TriageScan.objects.filter(
            pipeline_id=scan.pipeline_id, status=TriageStatus.COMPLETED, created_at__lte=scan.created_at
        )
        .exclude(pk=scan.pk)
        .order_by("-created_at", "-pk")
        .first()
    )
    if previous is None:
        return {}
    return dict(previous.groups.values_list("signature", "count"))


def _group_row(scan: TriageScan, g: Group, previous: dict[str, int]) -> TriageGroup:
    low, high, total = g.receives
    return TriageGroup(
        scan=scan,
        signature=g.signature.digest,
        kind=GroupKind.ERROR if g.signature.kind == ERROR else GroupKind.SHAPE,
        title=g.signature.title,
        count=g.count,
        first_sent=g.first_sent,
        last_sent=g.last_sent,
        receive_min=low,
        receive_max=high,
        receive_total=total,
        sample_error=g.sample_error,
        sample_traceback=g.sample_traceback,
        sample_message_ids=g.sample_message_ids,
        request_ids=g.request_ids,
        previous_count=previous.get(g.signature.digest),
    )


def _message_rows(scan: TriageScan, group: TriageGroup, g: Group) -> Iterable[TriageMessage]:
    for m, line in g.members:
        yield TriageMessage(
            scan=scan,
            group=group,
            message_id=m.message_id,
            request_id=m.request_id[:128],
            sent_at=moment(m.sent_ms) if m.sent_ms is not None else None,
            receive_count=m.receive_count,
            message_group_id=m.group_id[:128],
            invocation_id=(line.invocation_id if line else "")[:64],
        )


def _store(scan: TriageScan, groups: list[Group], fields: dict) -> None:
    """Store the groups and messages and complete the scan, all or nothing."""
    with transaction.atomic():
        previous = _previous_counts(scan)
        rows = TriageGroup.objects.bulk_create([_group_row(scan, g, previous) for g in groups])
        messages = [row for stored, g in zip(rows, groups, strict=True) for row in _message_rows(scan, stored, g)]
        TriageMessage.objects.bulk_create(messages, batch_size=1000)
        at = clock.now()
        if not TriageScan.objects.filter(pk=scan.pk, status=TriageStatus.RUNNING).update(
            status=TriageStatus.COMPLETED, finished_at=at, heartbeat_at=at, **fields
        ):
            raise Abandoned  # rolls the groups back: the scan was declared stale meanwhile


def _finish_failed(scan: TriageScan, reason: str, examined: int) -> None:
    at = clock.now()
    TriageScan.objects.filter(pk=scan.pk, status=TriageStatus.RUNNING).update(
        status=TriageStatus.FAILED, finished_at=at, heartbeat_at=at, error=reason
    )
    if examined:
        _audit(scan, examined)


def _audit(scan: TriageScan, examined: int) -> None:
    """Who received the DLQ's messages, how many (no body is shown or stored)."""
    AuditEntry.record(
        AuditAction.DLQ_TRIAGE_SCAN,
        scan.requested_by,
        scan.pipeline,
        queue_url=scan.pipeline.dlq_url,
        scan=scan.pk,
        examined=examined,
    )


def prune(pipeline: Pipeline) -> int:
    """Drop the message rows of the pipeline's scans older than its newest TRIAGE_KEEP_SCANS (their
    groups stay). Returns the rows deleted."""
    finished = TriageScan.objects.filter(pipeline=pipeline).exclude(status__in=ACTIVE_TRIAGE_STATUSES)
    old = list(finished.order_by("-created_at", "-pk").values_list("pk", flat=True)[settings.TRIAGE_KEEP_SCANS :])
    return TriageMessage.objects.filter(scan_id__in=old).delete()[0] if old else 0


# --- reading -------------------------------------------------------------------------------------


def latest(pipeline: Pipeline) -> tuple[TriageScan | None, list[TriageGroup]]:
    """The pipeline's newest completed scan and its groups, biggest first ((None, []) before any)."""
    scan = (
        TriageScan.objects.filter(pipeline=pipeline, status=TriageStatus.COMPLETED)
        .order_by("-created_at", "-pk")
        .first()
    )
    return scan, (list(scan.groups.all()) if scan else [])


def causes_by_pipeline(pipeline_ids: Iterable[int]) -> dict[int, str]:
    """Each pipeline's top causes (`causes_summary`) from its newest completed scan, for the overview's
    rows: two queries however many pipelines."""
    newest = dict(
        TriageScan.objects.filter(pipeline_id__in=list(pipeline_ids), status=TriageStatus.COMPLETED)
        .values("pipeline_id")
        .annotate(newest=Max("pk"))
        .values_list("pipeline_id", "newest")
    )
    if not newest:
        return {}
    by_scan: dict[int, list[TriageGroup]] = {scan_id: [] for scan_id in newest.values()}
    for g in TriageGroup.objects.filter(scan_id__in=by_scan).only("scan_id", "kind", "title", "count"):
        by_scan[g.scan_id].append(g)
    return {pk: causes_summary(by_scan[scan_id]) for pk, scan_id in newest.items() if by_scan[scan_id]}


def _label(group: TriageGroup) -> str:
    """A group's cause in a few words: the exception type, with the key or name when it names the fault."""
    text = short_title(group.title)
    if group.kind == SHAPE:
        return text if len(text) <= SUMMARY_LABEL_CHARS else text[: SUMMARY_LABEL_CHARS - 1] + "…"
    kind, sep, message = text.partition(": ")
    if sep and " " not in kind:
        keep = message.startswith(("'", '"')) and len(message) <= SUMMARY_LABEL_CHARS and " " not in message
        return f"{kind} {message}" if keep else kind
    return text if len(text) <= SUMMARY_LABEL_CHARS else text[: SUMMARY_LABEL_CHARS - 1] + "…"


def share(count: int, total: int) -> str:
    """A group's part of the messages grouped, as a whole percentage ("71", "<1"; "0" of nothing)."""
    pct = 100 * count / total if total else 0
    return "<1" if 0 < pct < 1 else str(round(pct))


def _share(count: int, total: int) -> str:
    return f"{share(count, total)} %"


def causes_summary(scan_or_groups: TriageScan | Iterable[TriageGroup]) -> str:
    """One line: "3 causes: KeyError 'customer_id' 71 %, TimeoutError 20 %, not JSON 9 %" (the
    biggest first; "…" when there are more)."""
    groups = list(scan_or_groups.groups.all() if isinstance(scan_or_groups, TriageScan) else scan_or_groups)
    total = sum(g.count for g in groups)
    if not total:
        return "No messages."
    groups.sort(key=lambda g: (-g.count, g.title))
    parts = [f"{_label(g)} {_share(g.count, total)}" for g in groups[:SUMMARY_CAUSES]]
    if len(groups) > SUMMARY_CAUSES:
        parts.append("…")
    return f"{len(groups)} cause{'' if len(groups) == 1 else 's'}: " + ", ".join(parts)
