"""Per-request trace: follow one id through a pipeline's API access log, its consumer's log and its DLQ.

The id may be an API Gateway request id, an SQS message id or a correlation id. It is validated
(`logs.clean_id`) and only ever sent to CloudWatch Logs as a quoted term, so nothing a user types
can become filter-pattern syntax.

How a lookup runs (`lookup`):

1. FilterLogEvents with `"<id>"` over each pipeline's access-log and consumer log groups, in the
   window, following nextToken; every call counts against `MAX_CALLS`.
2. Each matching consumer line is placed in its Lambda invocation: the invocation id is read from
   the line when the runtime wrote it there (tab-separated logger format), otherwise the last
   `START RequestId` before the line in the same log stream is looked up.
3. For each invocation, FilterLogEvents with `"<invocation id>"` gets its START/END/REPORT lines
   (duration, memory); when the id's lines there are errors, the invocation's stream is read
   between START and END so tracebacks show in full.
4. The DLQs are scanned whole, within one budget per lookup (`dlqs.py`), for a message whose
   request-id attribute or message id matches: every DLQ, those of pipelines whose logs name the
   id first. Scanning is a receive (see `dlq.peek`), so it needs the permission to peek: without
   it (`scan_dlqs` False) no DLQ is received from and each is listed as not searched, and why. Only
   a DLQ examined whole lets the verdict say the message is not there; otherwise it says that is
   unknown, and why.

The parsing helpers are in `logs.py`, pure and tested without AWS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines import aws
from pipelines.models import TraceVerdict as Verdict
from pipelines.trace import dlqs
from pipelines.trace.logs import (
    LAMBDA_MAX_MS,
    clean_id,
    console_url,
    invocation_in_line,
    invocation_lines,
    is_error_line,
    last_start_before,
    message_ids_in,
    parse_access_entry,
    parse_marker,
    parse_report,
    quoted_term,
)

#: FilterLogEvents calls one lookup may make; past it the search stops and says so.
MAX_CALLS = 40
#: First look for an invocation's START this close before the line (most invocations are short).
NEAR_START_MS = 60 * 1000
DEFAULT_HOURS = 24


def verdict_for(
    access: list[dict[str, Any]], attempts: list[dict[str, Any]], in_dlq: bool, dlq_state: str = dlqs.ABSENT
) -> tuple[Verdict, int]:
    """The verdict and the number of retries, from what was found (`dlq_state`: a `dlqs.Outcome` state)."""
    retries = max(0, len(attempts) - 1)
    if in_dlq:
        return Verdict.DLQ, retries
    if attempts:
        if not attempts[-1]["failed"]:
            return Verdict.PROCESSED, retries
        return (Verdict.DLQ_UNKNOWN if dlq_state == dlqs.UNKNOWN else Verdict.FAILED), retries
    if access:
        statuses = [a.get("status") for a in access if a.get("status") is not None]
        if statuses and all(s >= 400 for s in statuses):
            return Verdict.REJECTED, 0
        return Verdict.QUEUED, 0
    return Verdict.NOT_FOUND, 0


def headline(
    verdict: Verdict,
    retries: int,
    access: list[dict[str, Any]],
    attempts: int = 0,
    dlq: dlqs.Outcome | None = None,
) -> str:
    """One sentence an operator reads first (`attempts`: the Lambda invocations found; `dlq`: what the
    DLQ search established). It never says a message is not in a DLQ unless that DLQ was examined whole."""
    dlq = dlq or dlqs.Outcome(dlqs.NO_DLQ, 0)
    if verdict == Verdict.PROCESSED:
        return "Processed" + (
            f" after {retries} retr{'y' if retries == 1 else 'ies'}." if retries else " on the first attempt."
        )
    failed = f"Failed and retried {retries} time(s); the last attempt failed"
    if verdict == Verdict.FAILED:
        where = (
            f"it is not in the DLQ: all {dlq.examined:,} message(s) there were examined"
            if dlq.state == dlqs.ABSENT
            else "the pipeline has no DLQ"
        )
        return f"{failed} and {where} (it may be retried again, or may have expired)."
    if verdict == Verdict.DLQ_UNKNOWN:
        return f"{failed}, and whether it is in the DLQ is unknown: {dlq.reason}."
    if verdict == Verdict.DLQ:
        return "In the dead-letter queue" + (f" after {attempts} failed attempt(s)." if attempts else ".")
    unknown = f" Whether it is in a DLQ is unknown: {dlq.reason}." if dlq.state == dlqs.UNKNOWN else ""
    if verdict == Verdict.QUEUED:
        return (
            "Accepted by the API; no consumer has logged it yet: still queued (or its logs are outside the window)."
            + unknown
        )
    if verdict == Verdict.REJECTED:
        return f"Rejected by the API (status {access[-1].get('status')}); it was never queued."
    if dlq.state == dlqs.UNKNOWN:
        return f"Not found in the log groups searched; whether it is in a DLQ is unknown: {dlq.reason}."
    if dlq.state == dlqs.ABSENT:
        where = "the DLQ" if dlq.queues == 1 else f"the {dlq.queues} DLQs"
        return f"Not found in the log groups searched, nor in {where}: all {dlq.examined:,} message(s) there were examined."
    return "Not found in the log groups searched (and there is no DLQ to search)."


@dataclass
class Search:
    """The state of one lookup: the call budget and what was searched."""

    start_ms: int
    end_ms: int
    max_calls: int = MAX_CALLS
    page_size: int | None = None  # tests pass a small one to exercise pagination
    calls: int = 0
    truncated: bool = False
    sources: list[dict[str, Any]] = field(default_factory=list)

    def filter(
        self,
        target: aws.Target,
        group: str,
        pattern: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        streams: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """All pages of one FilterLogEvents search, within the call budget; AwsError passes up."""
        events: list[dict[str, Any]] = []
        token = ""
        while True:
            if self.calls >= self.max_calls:
                self.truncated = True
                break
            self.calls += 1
            page = aws.filter_log_events(
                target,
                group,
                pattern,
                self.start_ms if start_ms is None else start_ms,
                self.end_ms if end_ms is None else end_ms,
                token,
                streams,
                self.page_size,
            )
            events.extend(page["events"])
            token = page["next_token"]
            if not token:
                break
        return events


def _source(search: Search, pipeline, kind: str, group: str) -> dict[str, Any]:
    src = {
        "pipeline": pipeline.name,
        "source": kind,
        "group": group,
        "console_url": console_url(pipeline.account.region, group),
        "found": 0,
        "error": "",
    }
    search.sources.append(src)
    return src


def _search_group(search: Search, target, pipeline, kind: str, group: str, ident: str) -> list[dict[str, Any]]:
    src = _source(search, pipeline, kind, group)
    try:
        events = search.filter(target, group, quoted_term(ident))
    except aws.AwsError as exc:
        src["error"] = str(exc)
        return []
    src["found"] = len(events)
    return events


def _find_invocation(search: Search, target, group: str, event: dict[str, Any]) -> str:
    """The invocation a consumer line belongs to: from the line, else the stream's last START before it."""
    inv = invocation_in_line(event["message"])
    if inv:
        return inv
    for back in (NEAR_START_MS, LAMBDA_MAX_MS):
        starts = search.filter(
            target,
            group,
            '"START RequestId"',
            event["timestamp"] - back,
            event["timestamp"] + 1,
            streams=[event["stream"]],
        )
        inv = last_start_before(starts, event["timestamp"])
        if inv or search.truncated:
            return inv
    return ""


def _invocation(
    search: Search, target, pipeline, group: str, inv: str, matched: list[dict[str, Any]], ident: str
) -> dict[str, Any]:
    """One Lambda attempt: its markers (second search, by invocation id) and the lines to show."""
    first, last = matched[0]["timestamp"], matched[-1]["timestamp"]
    lines = search.filter(target, group, quoted_term(inv), first - LAMBDA_MAX_MS, last + LAMBDA_MAX_MS)
    marks = {m[0]: e for e in lines if (m := parse_marker(e["message"])) and m[1] == inv}
    report = parse_report(marks["REPORT"]["message"]) if "REPORT" in marks else {"duration_ms": None, "memory_mb": None}
    failed = any(is_error_line(e["message"]) for e in matched)
    start_ts = marks["START"]["timestamp"] if "START" in marks else first
    end_ts = max((marks[k]["timestamp"] for k in ("END", "REPORT") if k in marks), default=last)
    shown = sorted(
        {(e["timestamp"], e["message"]): e for e in [*lines, *matched]}.values(), key=lambda e: e["timestamp"]
    )
    if failed and "START" in marks:
        # The error's traceback is often its own event without the id: read the stream START..END.
        try:
            shown = search.filter(target, group, "", start_ts, end_ts + 1, streams=[marks["START"]["stream"]])
        except aws.AwsError:
            pass  # the lines found so far still tell the story
    return {
        "kind": "invocation",
        "source": "Lambda invocation",
        "pipeline": pipeline.name,
        "group": group,
        "console_url": console_url(pipeline.account.region, group),
        "timestamp": start_ts,
        "invocation_id": inv,
        "failed": failed,
        "complete": "END" in marks or "REPORT" in marks,
        "duration_ms": report["duration_ms"],
        "memory_mb": report["memory_mb"],
        "stream": matched[0]["stream"],
        "lines": [
            {"timestamp": e["timestamp"], "message": e["message"], "error": is_error_line(e["message"])}
            for e in invocation_lines(sorted(shown, key=lambda e: e["timestamp"]), ident)
        ],
    }


def _consumer_attempts(search: Search, target, pipeline, ident: str, events: list[dict[str, Any]]) -> list[dict]:
    group = pipeline.consumer_log_group
    by_inv: dict[str, list[dict[str, Any]]] = {}
    orphans: list[dict[str, Any]] = []
    src = next(s for s in search.sources if s["group"] == group and s["pipeline"] == pipeline.name)
    for e in sorted(events, key=lambda e: e["timestamp"]):
        if parse_marker(e["message"]):
            continue  # the id is itself an invocation id: its markers are found below
        try:
            inv = _find_invocation(search, target, group, e)
        except aws.AwsError as exc:
            src["error"] = str(exc)
            inv = ""
        (by_inv.setdefault(inv, []) if inv else orphans).append(e)
    if not by_inv and any(parse_marker(e["message"]) for e in events):
        by_inv[ident] = [e for e in events if parse_marker(e["message"])]
    attempts = []
    for inv, matched in by_inv.items():
        try:
            attempts.append(_invocation(search, target, pipeline, group, inv, matched, ident))
        except aws.AwsError as exc:
            src["error"] = str(exc)
            orphans.extend(matched)
    for e in orphans:  # lines whose invocation could not be told apart still belong in the timeline
        attempts.append(
            {
                "kind": "line",
                "source": "Lambda log",
                "pipeline": pipeline.name,
                "group": group,
                "console_url": console_url(pipeline.account.region, group),
                "timestamp": e["timestamp"],
                "failed": is_error_line(e["message"]),
                "stream": e["stream"],
                "lines": [{"timestamp": e["timestamp"], "message": e["message"], "error": is_error_line(e["message"])}],
            }
        )
    return attempts


def _access_entries(pipeline, ident: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        entry = parse_access_entry(e["message"]) or {"request_id": "", "status": None, "latency_ms": None}
        out.append(
            {
                "kind": "access",
                "source": "API access log",
                "pipeline": pipeline.name,
                "group": pipeline.api_log_group,
                "console_url": console_url(pipeline.account.region, pipeline.api_log_group),
                "timestamp": e["timestamp"],
                **entry,
                "message": e["message"],
            }
        )
    return out


def _iso(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds") if ms else ""


def lookup(
    ident: str,
    pipelines: list,
    start: datetime,
    end: datetime,
    *,
    max_calls: int = MAX_CALLS,
    page_size: int | None = None,
    scan_dlqs: bool | frozenset[int] = True,
) -> dict[str, Any]:
    """Trace `ident` through `pipelines` between `start` and `end`; plain data (stored as the summary).

    Every pipeline's DLQ is searched, within the per-lookup budget (`dlqs.search`), when `scan_dlqs`
    (the user may peek at DLQs; a set of pipeline ids: at those only); otherwise none is, and the verdict
    says the DLQ was not searched.
    """
    ident = clean_id(ident)
    search = Search(int(start.timestamp() * 1000), int(end.timestamp() * 1000), max_calls, page_size)
    timeline: list[dict[str, Any]] = []
    access_all, attempts_all = [], []
    candidates: list[tuple[Any, set[str], bool]] = []
    with aws.metering() as meter:
        for p in pipelines:
            target = p.account.target()
            access = (
                _access_entries(p, ident, _search_group(search, target, p, "API access log", p.api_log_group, ident))
                if p.api_log_group
                else []
            )
            attempts: list[dict[str, Any]] = []
            if p.consumer_log_group:
                events = _search_group(search, target, p, "Lambda log", p.consumer_log_group, ident)
                if events:
                    attempts = _consumer_attempts(search, target, p, ident, events)
            ids = {ident} | {mid for a in attempts for ln in a["lines"] for mid in message_ids_in(ln["message"])}
            candidates.append((p, ids, bool(access or attempts)))
            timeline.extend(access)
            timeline.extend(attempts)
            access_all.extend(access)
            attempts_all.extend(a for a in attempts if a["kind"] == "invocation")
        limit = dlqs.cap()
        rows, found = dlqs.search(candidates, limit, allowed=scan_dlqs)
    timeline.extend(found)
    # The DLQs that could hold the message: those of the pipelines whose logs name the id, if any.
    named = any(c[2] for c in candidates)
    outcome = dlqs.outcome([r for r in rows if r["mentioned"] or not named], found, limit)
    attempts_all.sort(key=lambda a: a["timestamp"])
    verdict, retries = verdict_for(access_all, attempts_all, bool(found), outcome.state)
    for n, a in enumerate(attempts_all, 1):
        a["attempt"] = n
    timeline.sort(key=lambda e: (e["timestamp"] is None, e["timestamp"] or 0))
    for e in timeline:
        e["at"] = _iso(e["timestamp"])
    for r in rows:
        r["shortfall"] = dlqs.shortfall(r, limit)
    return {
        "id": ident,
        "verdict": verdict.value,
        "retries": retries,
        "headline": headline(verdict, retries, access_all, len(attempts_all), outcome),
        "timeline": timeline,
        "sources": search.sources,
        "dlqs": rows,
        "dlq_cap": limit,
        "dlq_seconds": dlqs.SCAN_SECONDS,
        "dlq_state": outcome.state,
        "dlq_allowed": bool(scan_dlqs),
        "pipelines": [p.name for p in pipelines],
        "window": [start.isoformat(timespec="seconds"), end.isoformat(timespec="seconds")],
        "log_calls": search.calls,
        "max_calls": max_calls,
        "truncated": search.truncated,
        "calls": dict(meter.calls),
        "total_calls": meter.total_calls,
    }


def default_window(at: datetime, hours: int = DEFAULT_HOURS) -> tuple[datetime, datetime]:
    return at - timedelta(hours=hours), at
