"""Dead-letter queues: peek at messages, redrive them (all, or a filtered selection), delete chosen
messages, purge. Every action is a `RedriveTask` row: who, what, when, progress, outcome.

Two engines move messages, chosen by `choose_engine`:

- *native*: SQS's own `StartMessageMoveTask` for a whole DLQ to one queue, polled with
  `ListMessageMoveTasks` and cancelled with `CancelMessageMoveTask`. An endpoint that lacks these
  operations (the emulator does) is remembered on the account and the batch engine takes over.
- *batch*: receive up to 10 → `SendMessageBatch` to the destination (body, message attributes,
  trace header; for FIFO the group id and a deduplication id) → delete from the DLQ only the
  entries whose send succeeded. It is what filters, maximums, dry runs and deletions need.

What the batch engine guarantees:

- A message leaves the DLQ only after SQS accepted it at the destination. Failed entries, and
  messages a filter did not select, stay in the DLQ: they are held invisible while the task scans
  (so one pass sees every message once) and made visible again when it ends.
- Counts are written to the row after every batch, before that batch's deletes, together with the
  ids just sent. A worker that dies is replaced by another (`resume_stale_redrives`), which
  deletes without re-sending any message whose id was recorded as sent, so the only duplicates
  possible are one batch sent by a worker that died before recording it (and on a FIFO
  destination its deduplication id suppresses even those for five minutes).
- Every state change is a compare-and-set on (pk, run token, status): a cancelled task or one
  taken over by another worker is noticed at the next batch.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce

from . import aws
from .discovery import DiscoveryError, parse_queue_url
from .models import (
    ACTIVE_REDRIVE_STATUSES,
    DRY_RUN_SAMPLE,
    AwsAccount,
    DlqOperation,
    FilterKind,
    Pipeline,
    RedriveEngine,
    RedriveStatus,
    RedriveTask,
    now,
)

log = logging.getLogger(__name__)

#: Seconds a task keeps the messages it received invisible (renewed while it still needs them).
#: Also how long the messages a dead worker held take to come back.
HOLD_SECONDS = 180
#: A running task without a heartbeat for this long is considered abandoned and resumed.
STALE_SECONDS = 120
#: Runs of one task before it is declared failed (a task that kills its worker every time).
MAX_ATTEMPTS = 5
#: How often the native engine polls ListMessageMoveTasks.
NATIVE_POLL_SECONDS = 5
#: StartMessageMoveTask's ceiling for MaxNumberOfMessagesPerSecond.
MAX_RATE = 500
PEEK_MAX = 100
PEEK_HOLD_SECONDS = 30
MAX_IDS = 1000
#: SendMessageBatch payload per call; SQS allows more today, this is safe on every endpoint.
BATCH_BYTES = 256 * 1024
#: Empty receives in a row, while the queue still reports visible messages, before a scan ends
#: (counts are approximate; FIFO groups behind held messages are not delivered).
EMPTY_ROUNDS = 5
#: Batches in a row whose every entry failed before the task gives up on the destination.
FAILED_BATCHES_TO_ABORT = 3
TRANSIENT_RETRIES = 3
#: Marker in AwsAccount.unsupported_statistics: the endpoint lacks SQS message move tasks.
NATIVE_UNSUPPORTED = "sqs:StartMessageMoveTask"
#: AWS's answer when it will not move this queue's messages natively (not an endpoint-wide lack).
SQS_UNSUPPORTED_CODES = {"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation"}

sleep = time.sleep  # module-level so tests can skip waiting
monotonic = time.monotonic


class RedriveError(Exception):
    """A DLQ action cannot start or continue; `str()` says why, for the operator.

    `task` is the task in the way, when another one is already active on the DLQ.
    """

    def __init__(self, message: str, task: RedriveTask | None = None):
        super().__init__(message)
        self.task = task


class LostOwnership(Exception):
    """Another worker took the task over (this one was thought dead)."""


# --- filters -----------------------------------------------------------------------------------------


def parse_ids(text: str) -> list[str]:
    """Ids one per line (or separated by spaces or commas), duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for part in (text or "").replace(",", " ").split():
        seen.setdefault(part.strip(), None)
    return list(seen)


def attribute_value(message: dict[str, Any], name: str) -> str | None:
    attr = (message.get("MessageAttributes") or {}).get(name) or {}
    return attr.get("StringValue")


@dataclass(frozen=True)
class Filter:
    """Which messages an action selects. Pure: tested without I/O."""

    kind: str = FilterKind.NONE
    attribute: str = ""
    value: str = ""
    ids: frozenset[str] = frozenset()

    @classmethod
    def from_task(cls, task: RedriveTask) -> Filter:
        ids = (
            frozenset(task.filter_ids())
            if task.filter_kind in (FilterKind.REQUEST_IDS, FilterKind.MESSAGE_IDS)
            else frozenset()
        )
        return cls(task.filter_kind, task.filter_attribute, task.filter_value, ids)

    def matches(self, message: dict[str, Any]) -> bool:
        if self.kind == FilterKind.ATTRIBUTE:
            return attribute_value(message, self.attribute) == self.value
        if self.kind == FilterKind.BODY:
            return self.value in (message.get("Body") or "")
        if self.kind == FilterKind.REQUEST_IDS:
            return attribute_value(message, self.attribute) in self.ids
        if self.kind == FilterKind.MESSAGE_IDS:
            return message.get("MessageId") in self.ids
        return True

    def validate(self) -> None:
        if self.kind == FilterKind.ATTRIBUTE and not (self.attribute and self.value):
            raise RedriveError("Give the attribute name and the value to match.")
        if self.kind == FilterKind.BODY and not self.value:
            raise RedriveError("Give the text the message bodies must contain.")
        if self.kind == FilterKind.REQUEST_IDS and not self.attribute:
            raise RedriveError("The pipeline has no request-id attribute set; filter by attribute instead.")
        if self.kind in (FilterKind.REQUEST_IDS, FilterKind.MESSAGE_IDS):
            if not self.ids:
                raise RedriveError("Give at least one id.")
            if len(self.ids) > MAX_IDS:
                raise RedriveError(f"Give at most {MAX_IDS} ids at a time (got {len(self.ids)}).")

    def task_fields(self) -> dict[str, str]:
        value = "\n".join(sorted(self.ids)) if self.ids else self.value
        return {"filter_kind": self.kind, "filter_attribute": self.attribute, "filter_value": value}


# --- peeking -----------------------------------------------------------------------------------------


@dataclass
class PeekedMessage:
    """A DLQ message as the browser shows it."""

    id: str
    body: str
    sent_at: datetime | None
    receive_count: int
    group_id: str
    request_id: str | None
    attributes: list[tuple[str, str, str]]

    @property
    def size(self) -> int:
        return len(self.body.encode())

    @property
    def json(self) -> Any:
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict | list) else None

    def pretty_body(self, limit: int = 65536) -> str:
        value = self.json
        text = json.dumps(value, indent=2, ensure_ascii=False) if value is not None else self.body
        return text if len(text) <= limit else text[:limit] + f"\n… (truncated; {self.size:,} bytes in all)"

    def masked_preview(self) -> str:
        """The message's shape without its content: JSON keys, or text with letters and digits masked."""
        value = self.json
        if isinstance(value, dict):
            return "{" + ", ".join(f'"{k}": •••' for k in list(value)[:12]) + (", …" if len(value) > 12 else "") + "}"
        if isinstance(value, list):
            return f"[ {len(value)} item(s) ]"
        masked = "".join("•" if c.isalnum() else c for c in self.body[:80])
        return masked + ("…" if len(self.body) > 80 else "")


def _timestamp(ms: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    except (TypeError, ValueError):
        return None


def _display_attributes(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for name, attr in sorted((message.get("MessageAttributes") or {}).items()):
        if "StringValue" in attr:
            value = attr["StringValue"]
        else:
            value = f"binary, {len(attr.get('BinaryValue') or b'')} bytes"
        out.append((name, attr.get("DataType", ""), value))
    return out


def peeked(message: dict[str, Any], request_id_attribute: str) -> PeekedMessage:
    system = message.get("Attributes") or {}
    return PeekedMessage(
        id=message["MessageId"],
        body=message.get("Body") or "",
        sent_at=_timestamp(system.get("SentTimestamp")),
        receive_count=int(system.get("ApproximateReceiveCount") or 0),
        group_id=system.get("MessageGroupId", ""),
        request_id=attribute_value(message, request_id_attribute) if request_id_attribute else None,
        attributes=_display_attributes(message),
    )


def release(target: aws.Target, queue_url: str, receipts: Iterable[tuple[str, str]], timeout: int = 0) -> int:
    """Make received messages visible again (or hold them `timeout` more seconds), 10 per call.

    Best effort: a message whose release fails comes back on its own when its timeout runs out.
    Returns how many could not be released.
    """
    pending, failed = list(receipts), 0
    for i in range(0, len(pending), 10):
        chunk = [(str(n), h) for n, (_, h) in enumerate(pending[i : i + 10])]
        try:
            failed += len(aws.change_visibility_batch(target, queue_url, chunk, timeout)["failed"])
        except aws.AwsError as exc:
            log.warning("could not change the visibility of %d message(s) on %s: %s", len(chunk), queue_url, exc)
            failed += len(chunk)
    return failed


def peek(pipeline: Pipeline, count: int = 10) -> list[PeekedMessage]:
    """Up to `count` DLQ messages, without consuming them.

    Peeking is a receive: each message's receive count goes up by one and it is hidden from other
    readers until it is made visible again, which happens as soon as all are read.
    """
    if not pipeline.dlq_url:
        raise RedriveError(f"{pipeline.name} has no dead-letter queue.")
    count = max(1, min(PEEK_MAX, count))
    target = pipeline.account.target()
    held: list[tuple[str, str]] = []
    out: dict[str, PeekedMessage] = {}
    try:
        while len(out) < count:
            # Long-poll once when nothing came back yet: short polls sample only some SQS servers.
            wait = 0 if out or held else 1
            msgs = aws.receive_messages(target, pipeline.dlq_url, count - len(out), PEEK_HOLD_SECONDS, wait)
            if not msgs:
                break
            for m in msgs:
                held.append((m["MessageId"], m["ReceiptHandle"]))
                out.setdefault(m["MessageId"], peeked(m, pipeline.request_id_attribute))
    except aws.AwsError as exc:
        raise RedriveError(_queue_problem(exc, pipeline.dlq_url, "the DLQ")) from exc
    finally:
        release(target, pipeline.dlq_url, held)
    return list(out.values())


# --- planning ----------------------------------------------------------------------------------------


@dataclass
class QueueInfo:
    url: str
    arn: str
    fifo: bool
    visible: int
    in_flight: int

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def _queue_problem(exc: aws.AwsError, url: str, what: str) -> str:
    if exc.is_missing:
        return f"No queue exists at {url} ({what}): it was deleted, or the URL is wrong."
    if exc.is_denied:
        return f"Access to {what} was denied: {exc}"
    return str(exc)


def queue_info(target: aws.Target, url: str, what: str = "the queue") -> QueueInfo:
    try:
        attrs = aws.queue_attributes(
            target,
            url,
            ["QueueArn", "FifoQueue", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    except aws.AwsError as exc:
        raise RedriveError(_queue_problem(exc, url, what)) from exc
    return QueueInfo(
        url=url,
        arn=attrs.get("QueueArn", ""),
        fifo=attrs.get("FifoQueue") == "true",
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def dlq_info(pipeline: Pipeline) -> QueueInfo:
    if not pipeline.dlq_url:
        raise RedriveError(f"{pipeline.name} has no dead-letter queue.")
    return queue_info(pipeline.account.target(), pipeline.dlq_url, "the DLQ")


def choose_engine(
    account: AwsAccount,
    *,
    operation: str = DlqOperation.REDRIVE,
    flt: Filter = Filter(),
    max_messages: int | None = None,
    dry_run: bool = False,
) -> tuple[str, str]:
    """The engine for a task, and why, in words for the confirmation page."""
    if operation != DlqOperation.REDRIVE:
        return RedriveEngine.BATCH, "deleting chosen messages needs receive and delete"
    if dry_run:
        return RedriveEngine.BATCH, "a dry run samples messages and moves none"
    if flt.kind:
        return RedriveEngine.BATCH, "a filter selects messages one by one (selective redrive)"
    if max_messages:
        return RedriveEngine.BATCH, "SQS's message move task cannot stop after a number of messages"
    if NATIVE_UNSUPPORTED in (account.unsupported_statistics or []):
        return RedriveEngine.BATCH, "this endpoint does not support SQS message move tasks"
    return RedriveEngine.NATIVE, "the whole DLQ moves to one queue: SQS moves it server-side"


@dataclass
class Plan:
    dlq: QueueInfo
    destination: QueueInfo
    engine: str
    engine_reason: str


def plan_redrive(
    pipeline: Pipeline,
    destination_url: str = "",
    *,
    flt: Filter = Filter(),
    max_messages: int | None = None,
    rate: int | None = None,
    dry_run: bool = False,
) -> Plan:
    """Check a redrive before it starts: the DLQ and destination exist, their types match, the
    options make sense. Raises RedriveError with the reason; reads two queues' attributes."""
    flt.validate()
    if max_messages is not None and max_messages < 1:
        raise RedriveError("The maximum number of messages must be at least 1.")
    if rate is not None and not 1 <= rate <= MAX_RATE:
        raise RedriveError(f"The rate must be between 1 and {MAX_RATE} messages per second.")
    dlq = dlq_info(pipeline)
    url = (destination_url or "").strip() or pipeline.queue_url
    try:
        parse_queue_url(url)
    except DiscoveryError as exc:
        raise RedriveError(f"Destination: {exc}") from exc
    if url.rstrip("/") == pipeline.dlq_url.rstrip("/"):
        raise RedriveError("The destination is the dead-letter queue itself; choose another queue.")
    dest = queue_info(pipeline.account.target(), url, "the destination")
    if dlq.fifo != dest.fifo:
        kinds = ("a FIFO", "a standard") if dlq.fifo else ("a standard", "a FIFO")
        raise RedriveError(
            f"The DLQ is {kinds[0]} queue but {dest.name} is {kinds[1]} queue: messages can only "
            "be redriven between queues of the same type. Nothing was moved."
        )
    if dlq.visible + dlq.in_flight == 0:
        raise RedriveError(f"The DLQ {dlq.name} is empty: there is nothing to redrive.")
    engine, reason = choose_engine(pipeline.account, flt=flt, max_messages=max_messages, dry_run=dry_run)
    return Plan(dlq=dlq, destination=dest, engine=engine, engine_reason=reason)


# --- starting tasks ----------------------------------------------------------------------------------


def enqueue(task_id: int) -> None:
    """Run the task on a worker once the row is committed (in-process with CELERY_TASK_ALWAYS_EAGER)."""
    from . import tasks

    transaction.on_commit(lambda: tasks.run_redrive.delay(task_id))


def _username(user) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else ""


def _save_new(task: RedriveTask) -> tuple[RedriveTask, bool]:
    """Insert the task; a second submit of the same form gets the first task back, and a task on a
    DLQ that already has an active one is refused, by the database's unique constraints."""
    try:
        with transaction.atomic():
            task.save()
        return task, True
    except IntegrityError:
        if task.request_token:
            existing = RedriveTask.objects.filter(request_token=task.request_token).first()
            if existing is not None:
                return existing, False
        active = RedriveTask.objects.filter(source_url=task.source_url, status__in=ACTIVE_REDRIVE_STATUSES).first()
        if active is None:
            raise
        who = f" by {active.requested_by_name}" if active.requested_by_name else ""
        raise RedriveError(
            f"Another task is already active on this dead-letter queue: #{active.pk} "
            f"({active.get_operation_display().lower()}, {active.get_status_display().lower()}, "
            f"started{who} at {active.created_at:%Y-%m-%d %H:%M:%S} UTC). Wait for it to finish or cancel it; "
            "nothing new was started.",
            task=active,
        ) from None


def start_redrive(
    pipeline: Pipeline,
    user=None,
    *,
    destination_url: str = "",
    max_messages: int | None = None,
    rate: int | None = None,
    flt: Filter = Filter(),
    dry_run: bool = False,
    token: str = "",
) -> tuple[RedriveTask, bool]:
    """Check, record and enqueue a redrive. Returns (task, created); created is False when `token`
    was already used (a double-submitted form) and the task is the one it started."""
    if token:
        existing = RedriveTask.objects.filter(request_token=token).first()
        if existing is not None:
            return existing, False
    plan = plan_redrive(pipeline, destination_url, flt=flt, max_messages=max_messages, rate=rate, dry_run=dry_run)
    task = RedriveTask(
        pipeline=pipeline,
        pipeline_name=pipeline.name,
        operation=DlqOperation.REDRIVE,
        source_url=pipeline.dlq_url,
        source_arn=plan.dlq.arn or pipeline.dlq_arn,
        destination_url=plan.destination.url,
        destination_arn=plan.destination.arn,
        engine=plan.engine,
        dry_run=dry_run,
        max_messages=max_messages,
        rate=rate,
        depth_at_start=plan.dlq.visible + plan.dlq.in_flight,
        requested_by=user if _username(user) else None,
        requested_by_name=_username(user),
        request_token=token,
        **flt.task_fields(),
    )
    task, created = _save_new(task)
    if created:
        log.info("redrive #%s of %s started by %s (%s)", task.pk, pipeline.name, task.requested_by_name, task.engine)
        enqueue(task.pk)
    return task, created


def start_delete(pipeline: Pipeline, user, message_ids: list[str], token: str = "") -> tuple[RedriveTask, bool]:
    """Delete the given messages from the DLQ (found by scanning it; the others stay)."""
    if token:
        existing = RedriveTask.objects.filter(request_token=token).first()
        if existing is not None:
            return existing, False
    flt = Filter(FilterKind.MESSAGE_IDS, ids=frozenset(message_ids))
    flt.validate()
    dlq = dlq_info(pipeline)
    task = RedriveTask(
        pipeline=pipeline,
        pipeline_name=pipeline.name,
        operation=DlqOperation.DELETE,
        source_url=pipeline.dlq_url,
        source_arn=dlq.arn,
        engine=RedriveEngine.BATCH,
        depth_at_start=dlq.visible + dlq.in_flight,
        requested_by=user if _username(user) else None,
        requested_by_name=_username(user),
        request_token=token,
        **flt.task_fields(),
    )
    task, created = _save_new(task)
    if created:
        log.info(
            "deletion #%s of %d message(s) from %s by %s",
            task.pk,
            len(message_ids),
            pipeline.name,
            task.requested_by_name,
        )
        enqueue(task.pk)
    return task, created


def purge(pipeline: Pipeline, user=None, token: str = "") -> RedriveTask:
    """Purge the DLQ (one PurgeQueue call), recorded like any other task."""
    if token:
        existing = RedriveTask.objects.filter(request_token=token).first()
        if existing is not None:
            return existing
    dlq = dlq_info(pipeline)
    at = now()
    task, _ = _save_new(
        RedriveTask(
            pipeline=pipeline,
            pipeline_name=pipeline.name,
            operation=DlqOperation.PURGE,
            source_url=pipeline.dlq_url,
            source_arn=dlq.arn,
            status=RedriveStatus.RUNNING,
            depth_at_start=dlq.visible + dlq.in_flight,
            matched=dlq.visible + dlq.in_flight,
            requested_by=user if _username(user) else None,
            requested_by_name=_username(user),
            request_token=token,
            started_at=at,
            heartbeat_at=at,
            attempts=1,
        )
    )
    try:
        aws.purge_queue(pipeline.account.target(), pipeline.dlq_url)
    except aws.AwsError as exc:
        task.add_error(str(exc))
        RedriveTask.objects.filter(pk=task.pk, status=RedriveStatus.RUNNING).update(
            status=RedriveStatus.FAILED, finished_at=now(), errors=task.errors, error_count=task.error_count
        )
        task.refresh_from_db()
        raise RedriveError(f"The purge failed: {exc}", task=task) from exc
    RedriveTask.objects.filter(pk=task.pk, status=RedriveStatus.RUNNING).update(
        status=RedriveStatus.COMPLETED, finished_at=now()
    )
    log.info("purge #%s of %s by %s", task.pk, pipeline.name, task.requested_by_name)
    task.refresh_from_db()
    return task


def cancel(task: RedriveTask, user=None) -> bool:
    return task.request_cancel(_username(user))


# --- running tasks -----------------------------------------------------------------------------------


def claim(task_id: int) -> tuple[RedriveTask, str] | None:
    """Take a task to run: a pending one, or an active one whose worker stopped beating. CAS."""
    token = secrets.token_hex(16)
    at = now()
    stale = Q(heartbeat_at__lt=at - timedelta(seconds=STALE_SECONDS)) | Q(heartbeat_at__isnull=True)
    common = {
        "run_token": token,
        "heartbeat_at": at,
        "attempts": F("attempts") + 1,
        "started_at": Coalesce("started_at", Value(at, output_field=DateTimeField())),
    }
    rows = RedriveTask.objects.filter(pk=task_id)
    taken = rows.filter(status=RedriveStatus.PENDING).update(status=RedriveStatus.RUNNING, **common)
    if not taken:
        taken = rows.filter(stale, status__in=[RedriveStatus.RUNNING, RedriveStatus.CANCELLING]).update(**common)
    if not taken:
        return None
    return RedriveTask.objects.select_related("pipeline__account").get(pk=task_id), token


def run_redrive(task_id: int) -> RedriveTask | None:
    """Run (or resume) a task to its end in this process. Returns the task, or None when it was not
    ours to run (finished, or running on a live worker)."""
    claimed = claim(task_id)
    if claimed is None:
        return None
    task, token = claimed
    run = Run(task, token)
    try:
        if task.attempts > MAX_ATTEMPTS:
            raise RedriveError(f"Gave up after {MAX_ATTEMPTS} attempts: the task's worker kept stopping.")
        if task.operation == DlqOperation.PURGE:
            raise RedriveError("The purge was interrupted before SQS confirmed it; check the DLQ's depth.")
        if task.pipeline is None:
            raise RedriveError("The pipeline was deleted.")
        if task.attempts > 1:
            log.warning("resuming %s (attempt %d)", task, task.attempts)
        if task.engine == RedriveEngine.NATIVE:
            run_native(run)
        else:
            run_batch(run)
    except LostOwnership:
        log.warning("%s was taken over by another worker; this one stops", task)
        run.release_all()
    except Exception as exc:
        if not isinstance(exc, RedriveError | aws.AwsError):
            log.exception("%s failed", task)
        run.release_all()
        message = str(exc) if isinstance(exc, RedriveError | aws.AwsError) else f"{type(exc).__name__}: {exc}"
        run.finish(RedriveStatus.FAILED, error=message)
    return RedriveTask.objects.get(pk=task_id)


def resume_stale_redrives() -> list[int]:
    """Re-enqueue tasks whose worker died (no heartbeat for STALE_SECONDS) and pending tasks that no
    worker picked up. Safe to run anywhere, any number of times: a run starts only if it claims."""
    cutoff = now() - timedelta(seconds=STALE_SECONDS)
    ids = list(
        RedriveTask.objects.filter(
            Q(status__in=[RedriveStatus.RUNNING, RedriveStatus.CANCELLING], heartbeat_at__lt=cutoff)
            | Q(status=RedriveStatus.PENDING, created_at__lt=cutoff)
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        log.warning("redrive task #%s has no live worker; enqueueing it again", pk)
        enqueue(pk)
    return ids


@dataclass
class Held:
    until: float
    id: str
    receipt: str


@dataclass
class Run:
    """One worker's run of a task: its claim token, the counts, and the messages it holds."""

    task: RedriveTask
    token: str
    held: deque[Held] = field(default_factory=deque)
    sent_now: list[str] = field(default_factory=list)
    undeleted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = self.task.pipeline.account.target() if self.task.pipeline else None
        self.already_sent = set(self.task.sent_ids)
        self.undeleted = list(self.task.sent_ids)

    # -- bookkeeping --

    def _fields(self) -> dict[str, Any]:
        t = self.task
        return {
            "matched": t.matched,
            "moved": t.moved,
            "failed": t.failed,
            "skipped": t.skipped,
            "errors": t.errors,
            "error_count": t.error_count,
            "sample": t.sample,
            "sent_ids": (self.sent_now + self.undeleted)[-MAX_IDS:],
            "heartbeat_at": now(),
        }

    def checkpoint(self) -> str:
        """Save counts and heartbeat; return the task's status (running or cancelling)."""
        rows = RedriveTask.objects.filter(pk=self.task.pk, run_token=self.token)
        fields = self._fields()
        if rows.filter(status=RedriveStatus.RUNNING).update(**fields):
            return RedriveStatus.RUNNING
        if rows.filter(status=RedriveStatus.CANCELLING).update(**fields):
            return RedriveStatus.CANCELLING
        raise LostOwnership

    def finish(self, status: str, error: str = "") -> bool:
        if error:
            self.task.add_error(error)
        fields = self._fields()
        if status == RedriveStatus.COMPLETED and not self.undeleted:
            fields["sent_ids"] = []
        done = RedriveTask.objects.filter(
            pk=self.task.pk, run_token=self.token, status__in=[RedriveStatus.RUNNING, RedriveStatus.CANCELLING]
        ).update(status=status, finished_at=now(), **fields)
        if done:
            self.task.status = status
            log.info(
                "%s %s: matched %d, moved %d, failed %d, skipped %d",
                self.task,
                status,
                self.task.matched,
                self.task.moved,
                self.task.failed,
                self.task.skipped,
            )
        return bool(done)

    def note(self, message: str) -> None:
        """An informational line in the task's record (not an error)."""
        t = self.task
        t.errors = [*t.errors, {"at": now().isoformat(timespec="seconds"), "message": message, "level": "info"}][-100:]

    # -- holding messages --

    def hold(self, message: dict[str, Any]) -> None:
        self.held.append(Held(monotonic() + HOLD_SECONDS, message["MessageId"], message["ReceiptHandle"]))

    def renew_holds(self) -> None:
        """Extend the invisibility of held messages before it runs out (oldest first)."""
        due: list[Held] = []
        while self.held and self.held[0].until - monotonic() < HOLD_SECONDS / 2:
            due.append(self.held.popleft())
        if not due:
            return
        release(self.target, self.task.source_url, [(h.id, h.receipt) for h in due], HOLD_SECONDS)
        until = monotonic() + HOLD_SECONDS
        self.held.extend(Held(until, h.id, h.receipt) for h in due)

    def release_all(self) -> None:
        if self.held and self.target is not None:
            release(self.target, self.task.source_url, [(h.id, h.receipt) for h in self.held])
        self.held.clear()


def _retrying(fn, *args):
    """Call an aws function, retrying transient failures (beyond botocore's own) with backoff."""
    for attempt in range(TRANSIENT_RETRIES + 1):
        try:
            return fn(*args)
        except aws.AwsError as exc:
            if not exc.transient or attempt == TRANSIENT_RETRIES:
                raise
            sleep(2**attempt)
    raise AssertionError("unreachable")


# --- the batch engine --------------------------------------------------------------------------------


def send_entry(n: int, message: dict[str, Any], fifo: bool, task_id: int) -> dict[str, Any]:
    """The SendMessageBatch entry that re-creates a received message at the destination."""
    entry: dict[str, Any] = {"Id": str(n), "MessageBody": message.get("Body") or ""}
    attrs = {
        name: {k: v for k, v in a.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, a in (message.get("MessageAttributes") or {}).items()
    }
    if attrs:
        entry["MessageAttributes"] = attrs
    system = message.get("Attributes") or {}
    if system.get("AWSTraceHeader"):
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId") or "opsboard-redrive"
        # Not the original deduplication id: SQS would drop the copy as a duplicate of the message
        # first sent less than five minutes ago. Stable per task and message, so a batch re-sent
        # after a worker restart is deduplicated instead.
        entry["MessageDeduplicationId"] = f"redrive-{task_id}-{message['MessageId']}"[:128]
    return entry


def entry_size(entry: dict[str, Any]) -> int:
    size = len(entry["MessageBody"].encode())
    for name, a in entry.get("MessageAttributes", {}).items():
        value = a.get("StringValue")
        size += (
            len(name)
            + len(a.get("DataType", ""))
            + (len(value.encode()) if value is not None else len(a.get("BinaryValue") or b""))
        )
    return size


def size_chunks(entries: list[dict[str, Any]], limit: int = BATCH_BYTES) -> list[list[dict[str, Any]]]:
    """Split entries into SendMessageBatch calls of at most 10 entries and `limit` bytes."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    total = 0
    for e in entries:
        size = entry_size(e)
        if current and (len(current) == 10 or total + size > limit):
            chunks.append(current)
            current, total = [], 0
        current.append(e)
        total += size
    if current:
        chunks.append(current)
    return chunks


class Pacer:
    """Keeps a run at `rate` messages per second on average (None: as fast as it goes)."""

    def __init__(self, rate: int | None):
        self.rate = rate
        self.start = monotonic()
        self.count = 0

    def delay(self, moved: int) -> float:
        self.count += moved
        if not self.rate:
            return 0.0
        return max(0.0, self.start + self.count / self.rate - monotonic())


def _send(run: Run, dest_url: str, entries: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Send entries (≤ 10). Returns (ok entry ids, failed entries). When the whole call fails even
    after retries, each entry is tried alone once, so one bad message does not hold back the others."""
    try:
        result = _retrying(aws.send_message_batch, run.target, dest_url, entries)
        return result["ok"], result["failed"]
    except aws.AwsError as exc:
        if exc.is_missing or exc.is_denied:
            raise RedriveError(_queue_problem(exc, dest_url, "the destination")) from exc
        if len(entries) == 1:
            return [], [{"Id": entries[0]["Id"], "Code": exc.code, "Message": str(exc), "SenderFault": False}]
    ok: list[str] = []
    failed: list[dict[str, Any]] = []
    for e in entries:
        try:
            result = aws.send_message_batch(run.target, dest_url, [e])  # botocore still retries it
        except aws.AwsError as exc:
            if exc.is_missing or exc.is_denied:
                raise RedriveError(_queue_problem(exc, dest_url, "the destination")) from exc
            failed.append({"Id": e["Id"], "Code": exc.code, "Message": str(exc), "SenderFault": False})
            continue
        ok += result["ok"]
        failed += result["failed"]
    return ok, failed


def _delete(run: Run, ids_receipts: list[tuple[str, str]]) -> tuple[list[str], list[dict[str, Any]]]:
    ok: list[str] = []
    failed: list[dict[str, Any]] = []
    for i in range(0, len(ids_receipts), 10):
        chunk = ids_receipts[i : i + 10]
        entries = [(str(n), h) for n, (_, h) in enumerate(chunk)]
        by_entry = {str(n): mid for n, (mid, _) in enumerate(chunk)}
        try:
            result = _retrying(aws.delete_message_batch, run.target, run.task.source_url, entries)
        except aws.AwsError as exc:
            failed += [{"MessageId": mid, "Code": exc.code, "Message": str(exc)} for mid, _ in chunk]
            continue
        ok += [by_entry[e] for e in result["ok"]]
        failed += [
            {"MessageId": by_entry[f["Id"]], "Code": f["Code"], "Message": f["Message"]} for f in result["failed"]
        ]
    return ok, failed


class BatchScan:
    """The batch engine's pass over the DLQ for one run."""

    def __init__(self, run: Run):
        self.run = run
        task = run.task
        self.task = task
        self.flt = Filter.from_task(task)
        self.fifo = task.source_url.endswith(".fifo")
        self.resumed = task.attempts > 1
        self.resume_deadline = monotonic() + HOLD_SECONDS + 5
        self.empty_rounds = 0
        self.failed_batches = 0
        self.abort = ""
        self.pacer = Pacer(task.rate)
        self.selected_ids: set[str] = set()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"redrive-{task.pk}-delete")
        self.pending: Future | None = None

    def budget(self) -> int | None:
        """How many more messages to examine (dry run) or select (None: no limit)."""
        t = self.task
        if t.dry_run:
            return max(0, min(t.max_messages or DRY_RUN_SAMPLE, DRY_RUN_SAMPLE) - t.examined)
        if t.filter_kind == FilterKind.MESSAGE_IDS:
            return max(0, len(self.flt.ids) - t.matched)
        if t.max_messages:
            return max(0, t.max_messages - t.matched)
        return None

    def drained(self) -> bool:
        """After an empty receive: is the DLQ done, as far as this task is concerned?"""
        info = queue_info(self.run.target, self.task.source_url, "the DLQ")
        foreign_in_flight = info.in_flight - len(self.run.held)
        if self.resumed and foreign_in_flight > 0 and monotonic() < self.resume_deadline:
            # Messages the dead worker held come back when their hold runs out: wait for them.
            sleep(1)
            return False
        if info.visible > 0:
            self.empty_rounds += 1
            if self.empty_rounds <= EMPTY_ROUNDS:
                return False
            self.run.note(
                f"SQS reported {info.visible} more message(s) but would not deliver them (in a FIFO "
                "queue: messages behind one this task left in the DLQ, in their group); they stay there."
            )
        if foreign_in_flight > 0:
            self.run.note(
                f"{foreign_in_flight} message(s) were in flight elsewhere (another reader, or a peek) "
                "and stay in the DLQ; redrive again to move them."
            )
        return True

    def loop(self) -> str:
        """Scan until done, cancelled or stopped; returns the final status.

        Each batch's delete runs while the next batch is received (it only has to follow the
        checkpoint); its outcome is applied before that next batch is checkpointed.
        """
        run = self.run
        if run.checkpoint() == RedriveStatus.CANCELLING:  # cancelled while its worker was away
            return RedriveStatus.CANCELLED
        while True:
            budget = self.budget()
            if budget == 0:
                return RedriveStatus.COMPLETED
            run.renew_holds()
            wait = 1 if self.empty_rounds else 0
            msgs = _retrying(
                aws.receive_messages, run.target, self.task.source_url, min(10, budget or 10), HOLD_SECONDS, wait
            )
            self.settle()
            if not msgs:
                if self.drained():
                    return RedriveStatus.COMPLETED
                if run.checkpoint() == RedriveStatus.CANCELLING:
                    return RedriveStatus.CANCELLED
                continue
            self.empty_rounds = 0
            to_delete, sent = self.process(msgs, budget)
            status = run.checkpoint()  # counts and sent ids are durable before anything is deleted
            self.start_delete(to_delete)
            if self.abort:
                raise RedriveError(self.abort)
            if status == RedriveStatus.CANCELLING:
                return RedriveStatus.CANCELLED
            if self.wait(self.pacer.delay(sent)) == RedriveStatus.CANCELLING:
                return RedriveStatus.CANCELLED

    def wait(self, seconds: float) -> str:
        """Sleep for the rate limit, beating and watching for a cancel meanwhile."""
        status = RedriveStatus.RUNNING
        while seconds > 0:
            step = min(seconds, 2.0)
            sleep(step)
            seconds -= step
            status = self.run.checkpoint()
            if status == RedriveStatus.CANCELLING:
                break
        return status

    def process(self, msgs: list[dict[str, Any]], budget: int | None) -> tuple[list[tuple[str, str]], int]:
        """Examine a received batch. Returns the (message id, receipt) to delete and how many were sent."""
        run, task = self.run, self.task
        run.sent_now = []
        selected: list[dict[str, Any]] = []
        to_delete: list[tuple[str, str]] = []
        unexamined: list[tuple[str, str]] = []
        for m in msgs:
            mid = m["MessageId"]
            if mid in run.already_sent:
                # Sent by an earlier run that stopped before deleting it: finish the move, send nothing.
                to_delete.append((mid, m["ReceiptHandle"]))
                continue
            if mid in self.selected_ids:  # came back (a hold ran out): already counted
                run.hold(m)
                continue
            if budget is not None and budget <= 0:
                unexamined.append((mid, m["ReceiptHandle"]))
                continue
            matches = self.flt.matches(m)
            if task.dry_run:
                self.sample(m, matches)
                budget = None if budget is None else budget - 1
            if matches:
                selected.append(m)
                self.selected_ids.add(mid)
                if not task.dry_run and budget is not None:
                    budget -= 1
            else:
                task.skipped += 1
                run.hold(m)
        if unexamined:  # received beyond the limit: not examined, visible again at once
            release(run.target, task.source_url, unexamined)
        task.matched += len(selected)
        if task.dry_run:
            for m in selected:
                run.hold(m)
            return to_delete, 0
        if task.operation == DlqOperation.DELETE:
            return to_delete + [(m["MessageId"], m["ReceiptHandle"]) for m in selected], 0
        return to_delete + self.send(selected), len(selected)

    def send(self, selected: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Send the selected messages; returns the (id, receipt) of those SQS accepted."""
        run, task = self.run, self.task
        if not selected:
            return []
        entries = [send_entry(n, m, self.fifo, task.pk) for n, m in enumerate(selected)]
        by_entry = {e["Id"]: m for e, m in zip(entries, selected)}
        ok: list[str] = []
        failed: list[dict[str, Any]] = []
        for chunk in size_chunks(entries):
            if self.abort:
                failed += [{"Id": e["Id"], "Code": "", "Message": ""} for e in chunk]
                continue
            try:
                o, f = _send(run, task.destination_url, chunk)
            except RedriveError as exc:  # the destination is gone or denied: stop after this batch
                self.abort = str(exc)
                failed += [{"Id": e["Id"], "Code": "", "Message": ""} for e in chunk]
                continue
            ok += o
            failed += f
        for f in failed:
            m = by_entry[f["Id"]]
            run.hold(m)  # stays in the DLQ; visible again when the task ends
            task.failed += 1
            if f["Message"] or f["Code"]:
                task.add_error(f"not moved: {f['Code'] or 'error'}: {f['Message']}", message_id=m["MessageId"])
        self.failed_batches = self.failed_batches + 1 if failed and not ok else 0
        if self.failed_batches >= FAILED_BATCHES_TO_ABORT and not self.abort:
            self.abort = (
                f"Stopped after {FAILED_BATCHES_TO_ABORT} batches in a row could not be sent "
                f"({task.errors[-1]['message'] if task.errors else 'no reason given'})."
            )
        task.moved += len(ok)
        run.sent_now = [by_entry[i]["MessageId"] for i in ok]
        run.already_sent.update(run.sent_now)
        return [(by_entry[i]["MessageId"], by_entry[i]["ReceiptHandle"]) for i in ok]

    def start_delete(self, ids_receipts: list[tuple[str, str]]) -> None:
        """Delete from the DLQ in the background (the AWS calls only; `settle` applies the outcome)."""
        self.settle()
        if ids_receipts:
            ctx = contextvars.copy_context()  # the call meter goes along
            self.pending = self.pool.submit(ctx.run, _delete, self.run, ids_receipts)

    def settle(self) -> None:
        """Wait for the background delete, if any, and record its outcome."""
        if self.pending is None:
            return
        future, self.pending = self.pending, None
        ok, failed = future.result()
        task, run = self.task, self.run
        if task.operation == DlqOperation.DELETE:
            task.moved += len(ok)
            task.failed += len(failed)
        done = set(ok)
        run.undeleted = [i for i in run.undeleted if i not in done]
        for f in failed:
            if task.operation == DlqOperation.REDRIVE:
                # Already at the destination: remember it, so it is deleted (not re-sent) if seen again.
                run.undeleted.append(f["MessageId"])
                task.add_error(
                    f"sent but not deleted from the DLQ; it may be delivered twice: {f['Message']}",
                    message_id=f["MessageId"],
                )
            else:
                task.add_error(f"not deleted: {f['Message']}", message_id=f["MessageId"])

    def close(self) -> None:
        """Finish any delete in flight (it was checkpointed: it must happen), stop the thread."""
        try:
            self.settle()
        finally:
            self.pool.shutdown(wait=True)

    def sample(self, m: dict[str, Any], matches: bool) -> None:
        """A dry run's record of a message: ids and size, never the body."""
        p = peeked(m, self.task.pipeline.request_id_attribute)
        self.task.sample = [
            *self.task.sample,
            {
                "id": p.id,
                "sent_at": p.sent_at.isoformat(timespec="seconds") if p.sent_at else "",
                "request_id": p.request_id or "",
                "group_id": p.group_id,
                "size": p.size,
                "matches": matches,
            },
        ]


def run_batch(run: Run) -> None:
    scan = BatchScan(run)
    try:
        outcome = scan.loop()
    finally:
        scan.close()
    run.release_all()
    task = run.task
    if task.filter_kind == FilterKind.MESSAGE_IDS and task.matched < len(scan.flt.ids):
        run.note(
            f"{len(scan.flt.ids) - task.matched} of the chosen message(s) were not found in the DLQ (already gone?)."
        )
    run.finish(outcome)


# --- the native engine -------------------------------------------------------------------------------


def remember_native_unsupported(account: AwsAccount) -> None:
    if NATIVE_UNSUPPORTED not in (account.unsupported_statistics or []):
        log.warning(
            "the SQS endpoint of account %s does not support message move tasks; using the batch engine", account.name
        )
        account.unsupported_statistics = [*(account.unsupported_statistics or []), NATIVE_UNSUPPORTED]
        AwsAccount.objects.filter(pk=account.pk).update(unsupported_statistics=account.unsupported_statistics)


def find_move_task(results: list[dict[str, Any]], handle: str, started_ms: int | None) -> dict[str, Any] | None:
    """Our task among ListMessageMoveTasks results: by handle while it runs (AWS drops the handle
    once it ends), else the earliest one started since ours was (one active task per queue)."""
    for r in results:
        if r.get("TaskHandle") == handle:
            return r
    if started_ms is None:
        return None
    later = [r for r in results if not r.get("TaskHandle") and int(r.get("StartedTimestamp") or 0) >= started_ms]
    return min(later, key=lambda r: int(r.get("StartedTimestamp") or 0)) if later else None


def run_native(run: Run) -> None:
    task, target = run.task, run.target
    if not task.native_handle:
        started_ms = int(time.time() * 1000) - 60_000  # allow for clock skew against AWS
        try:
            handle = aws.start_message_move_task(target, task.source_arn, task.destination_arn, task.rate)
        except aws.AwsError as exc:
            if exc.code == aws.UNSUPPORTED or exc.code in SQS_UNSUPPORTED_CODES:
                if exc.code == aws.UNSUPPORTED:  # the endpoint lacks it: do not ask again on this account
                    remember_native_unsupported(task.pipeline.account)
                _switch_to_batch(
                    run, f"SQS's message move task is not available ({exc}); moved with the batch engine instead."
                )
                return run_batch(run)
            raise
        if not RedriveTask.objects.filter(pk=task.pk, run_token=run.token).update(
            native_handle=handle, native_started_ms=started_ms
        ):
            aws.cancel_message_move_task(target, handle)
            raise LostOwnership
        task.native_handle, task.native_started_ms = handle, started_ms
    cancel_sent, missing = False, 0
    while True:
        if run.checkpoint() == RedriveStatus.CANCELLING and not cancel_sent:
            try:
                aws.cancel_message_move_task(target, task.native_handle)
            except aws.AwsError as exc:  # already finished: the listing below says how
                log.info("cancelling the move task of %s: %s", task, exc)
            cancel_sent = True
        mine = find_move_task(
            _retrying(aws.list_message_move_tasks, target, task.source_arn), task.native_handle, task.native_started_ms
        )
        if mine is None:
            missing += 1
            if missing > 3:
                raise RedriveError("SQS no longer lists this message move task; check the queue in the AWS console.")
        else:
            missing = 0
            task.moved = int(mine.get("ApproximateNumberOfMessagesMoved") or 0)
            task.matched = int(mine.get("ApproximateNumberOfMessagesToMove") or task.matched or 0)
            state = mine.get("Status")
            if state == "COMPLETED":
                run.finish(RedriveStatus.COMPLETED)
                return
            if state == "CANCELLED":
                run.finish(RedriveStatus.CANCELLED)
                return
            if state == "FAILED":
                task.failed = max(0, task.matched - task.moved)
                run.finish(
                    RedriveStatus.FAILED,
                    error=f"SQS's move task failed: {mine.get('FailureReason') or 'no reason given'}",
                )
                return
            run.checkpoint()  # the progress shows while SQS works
        sleep(NATIVE_POLL_SECONDS)


def _switch_to_batch(run: Run, why: str) -> None:
    if not RedriveTask.objects.filter(pk=run.task.pk, run_token=run.token, engine=RedriveEngine.NATIVE).update(
        engine=RedriveEngine.BATCH
    ):
        raise LostOwnership
    run.task.engine = RedriveEngine.BATCH
    run.note(why)
    log.info("%s: %s", run.task, why)
