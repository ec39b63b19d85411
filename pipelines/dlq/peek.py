"""Peeking at a DLQ: messages read without consuming them, as the browser shows them.

SQS has no way to read a message without receiving it, so `scan` receives: up to 10 messages per
call, each held invisible while the scan goes on (so every receive returns messages not seen yet),
and all made visible again when it ends. Each message examined has its receive count raised by one.
`peek` is a scan that stops at a few messages; the trace scans a whole DLQ for one request.

When has a scan seen the whole queue? A short poll asks only some of SQS's servers, so an empty one
proves nothing; a long poll asks all of them. A scan is complete only after an empty long poll,
when SQS's own counts then agree: nothing visible (in a FIFO queue a group's next messages are not
delivered while an earlier one is held), nothing delayed, nothing in flight beyond what the scan
holds (messages another reader holds cannot be seen). The counts are approximate, so the answer
errs towards "not the whole queue".

A message someone else deletes while the scan holds it (its receipt handle from an earlier receive
still works) cannot be released: it is counted as gone, not as a failure.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelines import aws
from pipelines.dlq.filters import attribute_value
from pipelines.dlq.queues import RedriveError, queue_problem
from pipelines.models import AuditAction, AuditEntry, AuditThrough, Pipeline

log = logging.getLogger(__name__)
PEEK_MAX = 100
#: Seconds a received message stays invisible: longer than a scan lasts (SCAN_SECONDS and its
#: release), and how soon held messages come back by themselves if the process stops mid-scan.
PEEK_HOLD_SECONDS = 30
#: How much longer than a scan its messages are held: time for the release at its end.
RELEASE_MARGIN_SECONDS = 15
#: The longest a scan goes on receiving; it then stops and says so.
SCAN_SECONDS = 15
#: Empty long polls in a row while SQS still counts visible messages before a scan gives up on them.
EMPTY_ROUNDS = 2
#: Held messages are released by this many threads at once (one call per 10 messages).
RELEASE_THREADS = 4
#: What SQS answers when asked to release a message that is no longer there (deleted meanwhile).
GONE_CODES = {
    "ReceiptHandleIsInvalid",
    "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
}
monotonic = time.monotonic  # module-level so tests can make time pass

#: Why a scan did not see the whole queue (`Scan.stopped`).
STOP_CAP = "cap"  # it examined as many messages as it was allowed
STOP_TIME = "time"  # SCAN_SECONDS ran out
STOP_IN_FLIGHT = "in_flight"  # another reader held messages
STOP_UNDELIVERED = "undelivered"  # SQS counted visible messages it did not deliver
STOP_DELAYED = "delayed"  # messages were delayed
STOP_ERROR = "error"  # a call failed


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


@dataclass
class PeekedMessage:
    """A DLQ message as the browser shows it."""

    id: str
    body: str
    sent_at: datetime | None
    receive_count: int
    group_id: str
    request_id: str | None
    #: (name, data type, value): a string attribute's value, or "binary, N bytes".
    attributes: list[tuple[str, str, str]]
    #: Each attribute's value size in bytes, by name.
    attribute_sizes: dict[str, int] = field(default_factory=dict)

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
        """The body's kind and size, nothing of its content: no keys, no characters, not even its
        punctuation (`password=hunter2` would show its shape)."""
        value = self.json
        size = _count(self.size, "byte", "bytes")
        if isinstance(value, dict):
            return f"JSON object, {_count(len(value), 'key', 'keys')}, {size}"
        if isinstance(value, list):
            return f"JSON array, {_count(len(value), 'item', 'items')}, {size}"
        return f"Text, {size}"

    def masked_attributes(self, shown: str = "") -> list[dict[str, Any]]:
        """The attributes for those who may not read bodies: names, types and sizes; the value only of
        the attribute named `shown` (the pipeline's request-id attribute, which the page shows anyway)."""
        return [
            {
                "name": name,
                "type": kind,
                "value": value if shown and name == shown else None,
                "size": _count(self.attribute_sizes.get(name, 0), "byte", "bytes"),
            }
            for name, kind, value in self.attributes
        ]


def _timestamp(ms: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    except (TypeError, ValueError):
        return None


def _display_attributes(message: dict[str, Any]) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    out, sizes = [], {}
    for name, attr in sorted((message.get("MessageAttributes") or {}).items()):
        if "StringValue" in attr:
            value = attr["StringValue"]
            sizes[name] = len(value.encode())
        else:
            sizes[name] = len(attr.get("BinaryValue") or b"")
            value = f"binary, {sizes[name]} bytes"
        out.append((name, attr.get("DataType", ""), value))
    return out, sizes


def peeked(message: dict[str, Any], request_id_attribute: str) -> PeekedMessage:
    system = message.get("Attributes") or {}
    attributes, sizes = _display_attributes(message)
    return PeekedMessage(
        id=message["MessageId"],
        body=message.get("Body") or "",
        sent_at=_timestamp(system.get("SentTimestamp")),
        receive_count=int(system.get("ApproximateReceiveCount") or 0),
        group_id=system.get("MessageGroupId", ""),
        request_id=attribute_value(message, request_id_attribute) if request_id_attribute else None,
        attributes=attributes,
        attribute_sizes=sizes,
    )


@dataclass
class Scan:
    """What one pass over a queue saw."""

    #: The messages kept (those `keep` accepted), in the order SQS returned them.
    messages: list[PeekedMessage] = field(default_factory=list)
    #: Distinct messages received and looked at.
    examined: int = 0
    #: Visible + in flight + delayed when the scan began, as SQS reports it (approximate); None: unread.
    depth: int | None = None
    #: True only when every message of the queue was examined (see the module docstring).
    complete: bool = False
    #: Why it is not complete: one of the STOP_* values ("" when complete).
    stopped: str = ""
    #: Messages SQS counted that the scan could not examine (in flight elsewhere, undelivered, delayed).
    left: int = 0
    #: The error in an operator's words, when `stopped` is STOP_ERROR.
    error: str = ""
    #: Messages examined that were deleted by someone else during the scan (they could not be released).
    gone: int = 0
    #: Messages that could not be made visible again for another reason (they come back by themselves
    #: when their hold runs out).
    unreleased: int = 0


def _is_gone(failure: dict[str, Any]) -> bool:
    text = failure.get("Message", "").lower()
    return failure.get("Code", "") in GONE_CODES or "not found" in text or "does not exist" in text


def _release(target: aws.Target, queue_url: str, held: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """Make held messages visible again, 10 per call: the ids released, and those found gone."""
    released, gone = set(), set()
    for i in range(0, len(held), 10):
        chunk = held[i : i + 10]
        try:
            result = aws.change_visibility_batch(target, queue_url, [(str(n), h) for n, (_, h) in enumerate(chunk)], 0)
        except aws.AwsError as exc:
            log.warning("could not release %d message(s) on %s: %s", len(chunk), queue_url, exc)
            continue
        released.update(chunk[int(n)][0] for n in result["ok"])
        gone.update(chunk[int(f["Id"])][0] for f in result["failed"] if _is_gone(f))
    return released, gone


def _release_all(target: aws.Target, queue_url: str, held: list[tuple[str, str]], result: Scan) -> None:
    """Make held messages visible again, several calls at once when there are many; count on `result`
    the messages found gone and those that could not be released."""
    chunks = [held[i : i + 100] for i in range(0, len(held), 100)]
    if len(chunks) <= 1:
        outcomes = [_release(target, queue_url, held)] if held else []
    else:
        with ThreadPoolExecutor(max_workers=RELEASE_THREADS, thread_name_prefix="dlq-release") as pool:
            # Each thread runs in a copy of this context, so the AWS call meter counts its calls.
            futures = [pool.submit(contextvars.copy_context().run, _release, target, queue_url, c) for c in chunks]
        outcomes = [f.result() for f in futures]
    released = set().union(*(o[0] for o in outcomes))
    # A message received twice has two handles: it is gone only if neither released it.
    gone = set().union(*(o[1] for o in outcomes)) - released
    result.gone = len(gone)
    result.unreleased = len({mid for mid, _ in held} - released - gone)


def _judge_end(result: Scan, counts: dict[str, int], held: int, empty_rounds: int) -> None:
    """After an empty long poll: complete, worth another poll (nothing set), or stopped and why."""
    elsewhere = counts["in_flight"] - held
    if counts["visible"] > 0:
        if empty_rounds <= EMPTY_ROUNDS:
            return
        result.stopped, result.left = STOP_UNDELIVERED, counts["visible"]
    elif counts["delayed"] > 0:
        result.stopped, result.left = STOP_DELAYED, counts["delayed"]
    elif elsewhere > 0:
        result.stopped, result.left = STOP_IN_FLIGHT, elsewhere
    else:
        result.complete = True


def scan(
    pipeline: Pipeline,
    limit: int,
    keep: Callable[[PeekedMessage], bool] | None = None,
    seconds: float = SCAN_SECONDS,
    *,
    hold: int = PEEK_HOLD_SECONDS,
    progress: Callable[[int], None] | None = None,
) -> Scan:
    """Examine the DLQ's messages, at most `limit` of them and for at most `seconds`, keeping those
    `keep` accepts (all without it), and leave the queue as it was found (see the module docstring).

    Each message is held invisible for `hold` seconds (at least `seconds` and the release after
    it). `progress`, when given, is called after every receive with the number of messages examined
    so far. A failing call ends the scan with `stopped` = STOP_ERROR and the reason in `error`.
    """
    # A hold shorter than the scan would let messages come back mid-scan: raise it to outlast it.
    hold = max(hold, math.ceil(seconds) + RELEASE_MARGIN_SECONDS)
    if not pipeline.dlq_url:
        raise RedriveError(f"{pipeline.name} has no dead-letter queue.")
    target, url = pipeline.account.target(), pipeline.dlq_url
    result = Scan()
    held: list[tuple[str, str]] = []
    seen: set[str] = set()
    deadline = monotonic() + seconds
    try:
        result.depth = sum(aws.queue_counts(target, url).values())
        long_poll, empty_rounds = True, 0  # the first receive, and the one after an empty short poll
        while not (result.complete or result.stopped):
            if len(seen) >= limit:
                result.stopped = STOP_CAP
            elif monotonic() >= deadline:
                result.stopped = STOP_TIME
            else:
                wait = 1 if long_poll else 0
                msgs = aws.receive_messages(target, url, min(10, limit - len(seen)), hold, wait)
                for m in msgs:
                    held.append((m["MessageId"], m["ReceiptHandle"]))
                    if m["MessageId"] in seen:
                        continue  # delivered again (SQS delivers at least once): examined already
                    seen.add(m["MessageId"])
                    p = peeked(m, pipeline.request_id_attribute)
                    if keep is None or keep(p):
                        result.messages.append(p)
                if progress is not None:
                    progress(len(seen))
                if msgs:
                    long_poll, empty_rounds = False, 0
                elif not long_poll:
                    long_poll = True  # an empty short poll proves nothing: ask every server
                else:
                    empty_rounds += 1
                    _judge_end(result, aws.queue_counts(target, url), len(seen), empty_rounds)
    except aws.AwsError as exc:
        result.stopped, result.error = STOP_ERROR, queue_problem(exc, url, "the DLQ")
    finally:
        _release_all(target, url, held, result)
        result.examined = len(seen)
    return result


def peek(pipeline: Pipeline, count: int = 10) -> list[PeekedMessage]:
    """Up to `count` DLQ messages, without consuming them.

    Peeking is a receive: each message's receive count goes up by one and it is hidden from other
    readers until it is made visible again, which happens as soon as all are read.
    """
    result = scan(pipeline, max(1, min(PEEK_MAX, count)))
    if result.error:
        raise RedriveError(result.error)
    return result.messages


def audited_peek(
    pipeline: Pipeline,
    count: int,
    user,
    *,
    bodies: bool,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> Scan:
    """Receive up to `count` DLQ messages to show them (their bodies too when `bodies`), and write it to
    the audit trail, failed or not. A pipeline without a DLQ is a failed scan that received nothing."""
    try:
        result = scan(pipeline, max(1, min(PEEK_MAX, count)))
    except RedriveError as exc:
        result = Scan(stopped=STOP_ERROR, error=str(exc))
    AuditEntry.record(
        AuditAction.DLQ_PEEK,
        user,
        pipeline,
        remote_addr=remote_addr,
        through=through,
        queue_url=pipeline.dlq_url,
        count_asked=count,
        received=result.examined,
        message_ids=[m.id for m in result.messages],
        bodies_shown=bodies and bool(result.messages) and not result.error,
        error=result.error,
    )
    return result
