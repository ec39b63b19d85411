"""The trace's DLQ search: is the request's message in a dead-letter queue, and how sure is that?

Each DLQ is scanned whole (`dlq.peek.scan`: every message received once, held while the scan goes
on, made visible again at the end), within one budget per lookup: `settings.TRACE_DLQ_SCAN_MAX`
messages and `SCAN_SECONDS`, shared by the DLQs searched in turn — those of pipelines whose logs
name the id first, as the likeliest, then the others. A DLQ the budget does not reach is listed
as not searched. So is every DLQ when the user may not peek at DLQs (`allowed` False): the lookup
then searches logs only, and says why the DLQs were not searched.

What the search established (`outcome`) is one of: the message was found; it is absent (every
DLQ that could hold it was examined whole); there is no DLQ to hold it; or unknown, with the
reason in words. Only a whole examination lets the verdict say "not in the DLQ".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from pipelines.dlq import peek

#: Seconds one lookup spends receiving from DLQs, all of them together.
SCAN_SECONDS = peek.SCAN_SECONDS
#: Why a DLQ was not searched at all: the lookup's budget was used up before it.
STOP_BUDGET = "budget"
#: Why a DLQ was not searched at all: the user who ran the lookup may not peek at DLQs.
STOP_PERMISSION = "permission"

FOUND, ABSENT, NO_DLQ, UNKNOWN = "found", "absent", "none", "unknown"


@dataclass
class Outcome:
    """What the DLQ search established about the DLQs that could hold the message."""

    state: str  # FOUND, ABSENT, NO_DLQ or UNKNOWN
    examined: int  # messages examined in those DLQs
    reason: str = ""  # UNKNOWN: why, as a clause ("it is not among the 40 message(s) examined …")
    queues: int = 0  # how many DLQs could hold it


def cap() -> int:
    return settings.TRACE_DLQ_SCAN_MAX


def _found(pipeline, m: peek.PeekedMessage, seen_ms: int) -> dict[str, Any]:
    return {
        "kind": "dlq",
        "source": "Dead-letter queue",
        "pipeline": pipeline.name,
        "group": "",
        "console_url": "",
        "queue_url": pipeline.dlq_url,
        # Placed in the timeline when it was seen there (now): SQS keeps the original send time on a
        # message it moves to the DLQ, which would put the DLQ before the attempts that sent it there.
        "timestamp": seen_ms,
        "sent": m.sent_at.isoformat(timespec="milliseconds") if m.sent_at else "",
        "message_id": m.id,
        "request_id": m.request_id or "",
        "receive_count": m.receive_count,
    }


def _info(pipeline, mentioned: bool) -> dict[str, Any]:
    """One DLQ's row in "what was searched"; the counts are filled in by the scan."""
    return {
        "pipeline": pipeline.name,
        "pipeline_id": pipeline.pk,
        "queue_url": pipeline.dlq_url,
        "mentioned": mentioned,  # the pipeline's logs name the id
        "searched": False,
        "examined": 0,
        "depth": None,
        "complete": False,
        "stopped": "",
        "left": 0,
        "error": "",
    }


def search(
    candidates: Iterable[tuple[Any, set[str], bool]],
    limit: int | None = None,
    seconds: float = SCAN_SECONDS,
    allowed: bool | frozenset[int] = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scan the DLQs of `candidates` — (pipeline, ids to match, whether its logs name the id) — for a
    message whose id or request-id attribute is one of the ids. Returns (one row per DLQ, the
    timeline entries of the messages found). Without `allowed` nothing is received: every DLQ is
    listed as not searched, for want of the permission; a set of pipeline ids allows those only."""
    budget = cap() if limit is None else limit
    deadline = peek.monotonic() + seconds
    ordered = sorted((c for c in candidates if c[0].dlq_url), key=lambda c: not c[2])  # stable: mentioned first
    rows: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for pipeline, ids, mentioned in ordered:
        row = _info(pipeline, mentioned)
        rows.append(row)
        if not (allowed if isinstance(allowed, bool) else pipeline.pk in allowed):
            row["stopped"] = STOP_PERMISSION
            continue
        remaining = deadline - peek.monotonic()
        if budget <= 0 or remaining <= 0:
            row["stopped"] = STOP_BUDGET
            continue
        result = peek.scan(pipeline, budget, lambda m, ids=ids: m.id in ids or (m.request_id or "") in ids, remaining)
        budget -= result.examined
        row.update(
            searched=True,
            examined=result.examined,
            depth=result.depth,
            complete=result.complete,
            stopped=result.stopped,
            left=result.left,
            error=result.error,
        )
        seen_ms = int(datetime.now(UTC).timestamp() * 1000)
        found += [_found(pipeline, m, seen_ms) for m in result.messages]
    return rows, found


def shortfall(row: dict[str, Any], limit: int, seconds: float = SCAN_SECONDS) -> str:
    """Why one DLQ's search cannot tell that the message is absent, as a clause; "" when it can."""
    if row.get("complete"):
        return ""
    stopped = row.get("stopped", "")
    if stopped == peek.STOP_ERROR:
        return f"the DLQ could not be read ({row['error']})"
    if stopped == STOP_PERMISSION:
        return (
            "the DLQ was not searched: the user who ran the lookup lacks the “Can peek at a dead-letter queue” "
            "permission (searching a DLQ receives its messages)"
        )
    if stopped == STOP_BUDGET:
        return (
            f"the DLQ was not searched: the lookup's budget ({limit:,} messages, {seconds:g} s) was used up by "
            "the DLQs searched before it"
        )
    seen = f"it is not among the {row['examined']:,} message(s) examined"
    if row.get("depth") is not None:
        seen += f" of about {row['depth']:,} there"
    left = row.get("left", 0)
    return seen + {
        peek.STOP_CAP: f" (the search stops at a cap of {limit:,} per lookup)",
        peek.STOP_TIME: f" (the search stops after {seconds:g} s)",
        peek.STOP_IN_FLIGHT: (
            f", and {left:,} message(s) were in flight (held by another reader, such as a redrive or a peek) "
            "and could not be examined"
        ),
        peek.STOP_UNDELIVERED: (
            f", and SQS did not deliver about {left:,} more (in a FIFO queue, the messages behind an examined "
            "one in their group)"
        ),
        peek.STOP_DELAYED: f", and {left:,} message(s) were delayed and could not be examined",
    }.get(stopped, " (the search did not reach the end of the queue)")


def outcome(rows: list[dict[str, Any]], found: list[dict[str, Any]], limit: int) -> Outcome:
    """What the search established about the DLQs in `rows` (those that could hold the message)."""
    examined = sum(r["examined"] for r in rows)
    if found:
        return Outcome(FOUND, examined, queues=len(rows))
    if not rows:
        return Outcome(NO_DLQ, 0)
    short = [(r, why) for r in rows if (why := shortfall(r, limit))]
    if not short:
        return Outcome(ABSENT, examined, queues=len(rows))
    named = len(rows) > 1
    reason = "; ".join(f"in {_queue_name(r)}, {why}" if named else why for r, why in short)
    return Outcome(UNKNOWN, examined, reason, len(rows))


def _queue_name(row: dict[str, Any]) -> str:
    return row["queue_url"].rstrip("/").rsplit("/", 1)[-1]
