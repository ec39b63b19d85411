"""Edit & resend: one DLQ message's body corrected by an operator and sent to the pipeline's source
queue as a new message, the original deleted from the DLQ only once SQS accepted the copy.

The receipt handle never outlives the request that uses it. Loading a message for editing receives
it and makes it visible again at once; sending finds it again by id (a fresh receive), sends the
copy and deletes the original with that receive's handle, all within the one request. A send that
fails makes the original visible again at once: it stays in the DLQ. Messages the search for it
received on the way are made visible again when it is found (or not).

The copy keeps the original's message attributes and gains one, `MARKER` ("<user> at <time>, from
<original id>"), so the consumer's logs and a later peek tell an edited message apart. SQS allows 10
message attributes: an original that already has 10 is refused rather than one being dropped. On a
FIFO queue the copy keeps the message group and gets a new deduplication id (the original's would
make SQS drop it as a duplicate).
"""

from __future__ import annotations

import difflib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines import aws
from pipelines.dlq.peek import SCAN_SECONDS
from pipelines.dlq.queues import RedriveError, queue_problem, release
from pipelines.models import Pipeline

#: The attribute that marks an edited copy.
MARKER = "opsboard-edited"
#: SQS's limit on message attributes per message.
MAX_ATTRIBUTES = 10
#: Seconds a message received while finding one stays invisible: longer than a find, send and delete.
HOLD_SECONDS = 60
#: Empty long polls in a row after which the DLQ is taken to hold no more deliverable messages.
EMPTY_ROUNDS = 2
monotonic = time.monotonic  # module-level so tests can make time pass


@dataclass
class Found:
    """The outcome of looking for one message: it (received, with its receipt handle), or why not."""

    message: dict[str, Any] | None
    examined: int
    error: str = ""


def find(pipeline: Pipeline, message_id: str, limit: int, seconds: float = SCAN_SECONDS) -> Found:
    """Receive the DLQ until `message_id` turns up, examining at most `limit` messages for at most
    `seconds`. The message found stays held (HOLD_SECONDS); every other one is released at the end."""
    if not pipeline.dlq_url:
        raise RedriveError(f"{pipeline.name} has no dead-letter queue.")
    target, url = pipeline.account.target(), pipeline.dlq_url
    held: list[tuple[str, str]] = []
    seen: set[str] = set()
    found: dict[str, Any] | None = None
    empty, deadline = 0, monotonic() + seconds
    try:
        while found is None and len(seen) < limit and empty < EMPTY_ROUNDS and monotonic() < deadline:
            msgs = aws.receive_messages(target, url, 10, HOLD_SECONDS, 1)
            empty = 0 if msgs else empty + 1
            for m in msgs:
                if found is None and m["MessageId"] == message_id:
                    found = m
                else:
                    held.append((m["MessageId"], m["ReceiptHandle"]))
                seen.add(m["MessageId"])
    except aws.AwsError as exc:
        return Found(None, len(seen), queue_problem(exc, url, "the DLQ"))
    finally:
        release(target, url, held)
    return Found(found, len(seen))


def let_go(pipeline: Pipeline, message: dict[str, Any]) -> None:
    """Make a found message visible again at once (it stays in the DLQ)."""
    release(pipeline.account.target(), pipeline.dlq_url, [(message["MessageId"], message["ReceiptHandle"])])


def json_value(text: str) -> Any:
    """The JSON object or array a body holds (None: the body is not one)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def editable_body(body: str) -> str:
    """What the editor shows: JSON pretty-printed, any other text as it is."""
    value = json_value(body)
    return json.dumps(value, indent=2, ensure_ascii=False) if value is not None else body


def body_to_send(original: str, edited: str) -> str:
    """The edited body as it will be sent. Raises RedriveError when the original was JSON and the
    edit is not valid JSON.

    A JSON body is sent compact (as most producers send it), and exactly as the original when the
    edit changed no value; browsers send text areas with CRLF line ends, which are put back to LF
    unless the original had CRLF."""
    if "\r\n" not in original:
        edited = edited.replace("\r\n", "\n")
    before = json_value(original)
    if before is None:
        return edited
    try:
        after = json.loads(edited)
    except ValueError as exc:
        raise RedriveError(f"The body is not valid JSON ({exc}); the original was JSON. Nothing was sent.") from exc
    if after == before:
        return original
    return json.dumps(after, ensure_ascii=False, separators=(",", ":"))


def body_diff(original: str, sent: str, message_id: str) -> str:
    """A unified diff of the body, line by line (JSON bodies compared pretty-printed)."""
    a, b = editable_body(original), editable_body(sent)
    lines = difflib.unified_diff(
        a.splitlines(), b.splitlines(), f"{message_id} (original)", f"{message_id} (sent)", lineterm=""
    )
    return "\n".join(lines)


def copy_attributes(message: dict[str, Any], marker: str) -> dict[str, dict[str, Any]]:
    """The original's message attributes plus the marker (replacing an earlier edit's). Raises
    RedriveError when that would exceed SQS's 10 attributes."""
    attrs = {
        name: {k: v for k, v in a.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, a in (message.get("MessageAttributes") or {}).items()
        if name != MARKER
    }
    if len(attrs) >= MAX_ATTRIBUTES:
        raise RedriveError(
            f"The message already has {len(attrs)} message attributes, SQS's limit: the copy could not carry "
            f"the {MARKER} marker without dropping one of them. Nothing was sent; redrive it unedited instead."
        )
    attrs[MARKER] = {"DataType": "String", "StringValue": marker}
    return attrs


def marker_text(username: str, at: datetime, message_id: str) -> str:
    return f"{username or 'opsboard'} at {at.isoformat(timespec='seconds')}, from {message_id}"


@dataclass
class Outcome:
    """What a resend did, for the page and the audit trail."""

    sent: bool
    deleted: bool
    text: str
    new_id: str = ""
    diff: str = ""


def _send_copy(pipeline: Pipeline, original: dict[str, Any], body: str, marker: str) -> str:
    system = original.get("Attributes") or {}
    fifo = pipeline.queue_url.rstrip("/").endswith(".fifo")
    trace = system.get("AWSTraceHeader")
    return aws.send_message(
        pipeline.account.target(),
        pipeline.queue_url,
        body,
        copy_attributes(original, marker),
        group_id=(system.get("MessageGroupId") or "opsboard-edit") if fifo else "",
        deduplication_id=f"edit-{uuid.uuid4().hex}" if fifo else "",
        system_attributes={"AWSTraceHeader": {"DataType": "String", "StringValue": trace}} if trace else None,
    )


def resend(pipeline: Pipeline, original: dict[str, Any], edited: str, marker: str) -> Outcome:
    """Send the edited copy of a found (held) message to the source queue, then delete the original.

    Nothing is sent when the edit is refused (invalid JSON, too many attributes) and the original
    is released; a failed send releases it too. Raises RedriveError only for a refusal."""
    mid = original["MessageId"]
    try:
        body = body_to_send(original.get("Body") or "", edited)
        copy_attributes(original, marker)  # refuse before sending anything
    except RedriveError:
        let_go(pipeline, original)
        raise
    diff = body_diff(original.get("Body") or "", body, mid)
    try:
        new_id = _send_copy(pipeline, original, body, marker)
    except aws.AwsError as exc:
        let_go(pipeline, original)
        why = queue_problem(exc, pipeline.queue_url, "the source queue")
        return Outcome(False, False, f"The copy was not sent: {why} The original stays in the DLQ.", diff=diff)
    try:
        aws.delete_message(pipeline.account.target(), pipeline.dlq_url, original["ReceiptHandle"])
    except aws.AwsError as exc:
        return Outcome(
            True,
            False,
            f"Sent as {new_id}, but the original could not be deleted from the DLQ ({exc}): it is still there; "
            "delete it, or it will be processed twice if redriven.",
            new_id,
            diff,
        )
    return Outcome(
        True,
        True,
        f"Sent the edited message to the source queue as {new_id}; deleted {mid} from the DLQ.",
        new_id,
        diff,
    )
