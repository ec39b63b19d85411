"""Reading CloudWatch Logs lines for a trace: ids, markers, reports and errors. Pure, tested without AWS."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

#: The longest a Lambda invocation can run: how far before a line its START can be.
LAMBDA_MAX_MS = 15 * 60 * 1000
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
MARKER_RE = re.compile(rf"^(START|END|REPORT) RequestId: ({UUID})")
# Python/Node runtimes write "<level or time>\t<time>\t<invocation id>\t<message>".
RUNTIME_LINE_RE = re.compile(rf"\t({UUID})\t")
DURATION_RE = re.compile(r"\bDuration: ([\d.]+) ms")
MEMORY_RE = re.compile(r"Max Memory Used: (\d+) MB")
ERROR_RE = re.compile(r"\b(ERROR|Error|Exception|Traceback)\b")


class TraceInputError(ValueError):
    """What the user typed cannot be looked up; the message says why."""


def clean_id(value: str) -> str:
    """The id, stripped, or TraceInputError: 1–128 characters of letters, digits and . _ : -"""
    value = (value or "").strip()
    if not value:
        raise TraceInputError("Enter a request id, message id or correlation id.")
    if len(value) > 128:
        raise TraceInputError("An id is at most 128 characters long.")
    if not ID_RE.match(value):
        raise TraceInputError(
            "An id may contain only letters, digits and . _ : - (no spaces, quotes or filter-pattern syntax)."
        )
    return value


def quoted_term(value: str) -> str:
    """The filter pattern for a validated id: one quoted term, matched literally."""
    return f'"{clean_id(value)}"'


def console_url(region: str, group: str) -> str:
    """The log group's page in the AWS console."""
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{quote(group, safe='')}"
    )


def parse_json(message: str) -> dict[str, Any] | None:
    text = message.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_access_entry(message: str) -> dict[str, Any] | None:
    """An API access-log line ({requestId, status, responseLatency, …}) as {request_id, status, latency}."""
    data = parse_json(message)
    if not data or "requestId" not in data:
        return None
    status = data.get("status")
    latency = data.get("responseLatency", data.get("responseLatencyMs"))
    return {
        "request_id": str(data["requestId"]),
        "status": int(status) if str(status).isdigit() else None,
        "latency_ms": int(latency) if isinstance(latency, int | float) else None,
        "method": data.get("httpMethod", ""),
        "path": data.get("resourcePath", ""),
    }


def parse_marker(message: str) -> tuple[str, str] | None:
    """("START"|"END"|"REPORT", invocation id) for a Lambda platform line, else None."""
    m = MARKER_RE.match(message.strip())
    return (m.group(1), m.group(2)) if m else None


def parse_report(message: str) -> dict[str, float | None]:
    """Duration (ms) and max memory used (MB) from a REPORT line."""
    d, mem = DURATION_RE.search(message), MEMORY_RE.search(message)
    return {"duration_ms": float(d.group(1)) if d else None, "memory_mb": int(mem.group(1)) if mem else None}


def invocation_in_line(message: str) -> str:
    """The invocation id a runtime wrote into a log line, or "" (then the stream's START tells)."""
    marker = parse_marker(message)
    if marker:
        return marker[1]
    m = RUNTIME_LINE_RE.search(message)
    if m:
        return m.group(1)
    data = parse_json(message) or {}
    for key in ("function_request_id", "aws_request_id", "awsRequestId", "lambda_request_id"):
        value = data.get(key)
        # The function writes these lines: a value that is not an id is read as no id, never searched for.
        if isinstance(value, str) and ID_RE.match(value.strip()):
            return value.strip()
    return ""


def is_error_line(message: str) -> bool:
    data = parse_json(message)
    if data is not None:
        return str(data.get("level", "")).upper() in ("ERROR", "CRITICAL", "FATAL") or "error" in data
    return bool(ERROR_RE.search(message))


def message_ids_in(message: str) -> set[str]:
    """SQS message ids a consumer line names (the id to look for in the DLQ)."""
    data = parse_json(message) or {}
    return {str(data[k]) for k in ("messageId", "message_id") if data.get(k)}


def last_start_before(events: Iterable[dict[str, Any]], ts: int) -> str:
    """The invocation id of the latest START at or before `ts`."""
    best: tuple[int, str] | None = None
    for e in events:
        marker = parse_marker(e["message"])
        if marker and marker[0] == "START" and e["timestamp"] <= ts and (best is None or e["timestamp"] >= best[0]):
            best = (e["timestamp"], marker[1])
    return best[1] if best else ""


def invocation_lines(events: list[dict[str, Any]], ident: str) -> list[dict[str, Any]]:
    """The lines of one invocation worth showing: its START/END/REPORT, the lines naming `ident`, and the
    continuation lines (tracebacks) that follow those. Other records of a batch are left out."""
    out: list[dict[str, Any]] = []
    following = False
    for e in events:
        msg = e["message"]
        if parse_marker(msg) or ident in msg:
            out.append(e)
            following = ident in msg
        elif following and msg.startswith(("Traceback", " ", "\t")) and not parse_json(msg):
            out.append(e)  # a traceback logged as its own event right after the failing record
        else:
            following = False
    return out
