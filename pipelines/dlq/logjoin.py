"""Joining DLQ messages to their last failure in the consumer's log, with few FilterLogEvents calls.

Searching the log once per message would cost one call (or more) per message. Instead the messages
are sorted by SentTimestamp and each is given a window, from a little before it was sent to when
its last retry can have failed (max receive count × visibility timeout + function timeout, bounded
by TRIAGE_WINDOW_MAX_SECONDS, never past now); overlapping windows are merged, and each merged
window's error lines are read once, following nextToken. The calls so grow with the windows and
pages of error lines (distinct invocations), not with the messages. They are capped per scan
(TRIAGE_LOG_CALLS): the newest windows are read first, and the cap cutting the read short is
reported.

The filter pattern asks for error lines only, but nothing here depends on it (some endpoints
match every line with it): each line read is checked again (`signatures.is_failure_line`).

A failure line belongs to a message when it names the message's id (`logs.message_ids_in`, or the
id as a word of the line) or the value of the pipeline's request-id attribute. A message's last
failure is the latest such line; its traceback is the continuation lines that follow it in the
same log stream.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipelines import aws
from pipelines.dlq.signatures import is_failure_line
from pipelines.trace.logs import invocation_in_line, message_ids_in, parse_json, parse_marker

#: Error lines: runtime errors, exceptions, tracebacks and Lambda's timeout line (OR'ed terms).
ERROR_PATTERN = '?ERROR ?Error ?Exception ?Traceback ?"Task timed out"'
#: How long before a message's send time its window opens (clocks differ a little between services).
MARGIN_MS = 60_000
#: When the queue's settings are unknown: SQS's default receive count before a DLQ, its default
#: visibility timeout, and a function timeout of one minute.
DEFAULT_RECEIVES, DEFAULT_VISIBILITY, DEFAULT_FUNCTION_TIMEOUT = 5, 30, 60
#: Events per FilterLogEvents page (None: the service's own, up to 10,000); tests set a small one.
PAGE_SIZE: int | None = None
#: Ids are found in a line as its words; shorter words are not taken for ids.
WORD_RE = re.compile(r"[A-Za-z0-9._:-]{6,128}")


@dataclass
class FailureLine:
    timestamp: int
    message: str
    stream: str
    traceback: str = ""

    @property
    def invocation_id(self) -> str:
        return invocation_in_line(self.message)


@dataclass
class LogRead:
    """What reading one log group cost and found."""

    max_calls: int
    page_size: int | None = None
    calls: int = 0
    windows: int = 0
    windows_read: int = 0
    truncated: bool = False
    lines: list[FailureLine] = field(default_factory=list)


def window_ms(
    max_receive_count: int | None, visibility_timeout: int | None, function_timeout: int | None, cap_s: int
) -> int:
    """How long after its send time a message's failures can be logged, in ms."""
    receives = max_receive_count or DEFAULT_RECEIVES
    visibility = visibility_timeout if visibility_timeout is not None else DEFAULT_VISIBILITY
    seconds = receives * visibility + (function_timeout or DEFAULT_FUNCTION_TIMEOUT) + 60
    return min(cap_s, seconds) * 1000


def plan_windows(
    sent_ms: Iterable[int], length_ms: int, now_ms: int, margin_ms: int = MARGIN_MS
) -> list[tuple[int, int]]:
    """Merged windows [sent − margin, min(now, sent + length)] over the send times, oldest first."""
    windows: list[list[int]] = []
    for sent in sorted(sent_ms):
        start, end = sent - margin_ms, max(sent, min(now_ms, sent + length_ms))
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([start, end])
    return [(s, e) for s, e in windows]


def _is_continuation(message: str) -> bool:
    """A traceback logged as its own event after the failing line (not a JSON record, not a marker)."""
    return message.startswith(("Traceback", " ", "\t")) and not parse_json(message) and not parse_marker(message)


def failure_lines(events: list[dict[str, Any]]) -> list[FailureLine]:
    """The failure lines among `events`, each with the continuation lines after it in its stream."""
    streams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        streams[e["stream"]].append(e)
    out: list[FailureLine] = []
    for stream_events in streams.values():
        stream_events.sort(key=lambda e: e["timestamp"])  # stable: a page's order breaks ties
        current: FailureLine | None = None
        for e in stream_events:
            msg = e["message"]
            if current is not None and _is_continuation(msg):
                current.traceback = f"{current.traceback}\n{msg}" if current.traceback else msg
                continue
            current = None
            if is_failure_line(msg):
                current = FailureLine(e["timestamp"], msg, e["stream"])
                out.append(current)
    return out


def read_failures(
    target: aws.Target,
    group: str,
    windows: list[tuple[int, int]],
    read: LogRead,
    beat: Callable[[], None] = lambda: None,
) -> None:
    """Read the failure lines of `windows` (newest first) into `read`, within its call budget.

    AwsError passes up (the caller reports the source as failed). `beat` is called after each page.
    """
    read.windows = len(windows)
    for start, end in reversed(windows):
        events: list[dict[str, Any]] = []
        token, finished = "", False
        while read.calls < read.max_calls:
            read.calls += 1
            page = aws.filter_log_events(target, group, ERROR_PATTERN, start, end + 1, token, (), read.page_size)
            events.extend(page["events"])
            token = page["next_token"]
            beat()
            if not token:
                finished = True
                break
        read.lines.extend(failure_lines(events))  # a window cut short still tells what it read
        if not finished:
            read.truncated = True
            return
        read.windows_read += 1


def _words(message: str) -> set[str]:
    words = set(WORD_RE.findall(message))
    return words | {part for w in words if ":" in w for part in w.split(":")}


def last_failures(
    lines: Iterable[FailureLine], message_ids: Iterable[str], request_ids: dict[str, list[str]]
) -> dict[str, FailureLine]:
    """Each message's latest failure line, by message id (`request_ids`: request id → message ids)."""
    known = set(message_ids)
    latest: dict[str, FailureLine] = {}
    for line in lines:
        named = message_ids_in(line.message) | _words(line.message)
        owners = {w for w in named if w in known}
        for w in named:
            owners.update(request_ids.get(w, ()))
        for mid in owners:
            best = latest.get(mid)
            if best is None or line.timestamp >= best.timestamp:
                latest[mid] = line
    return latest
