"""Peeking at a DLQ: messages read without consuming them, as the browser shows them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines import aws
from pipelines.dlq.filters import attribute_value
from pipelines.dlq.queues import RedriveError, queue_problem, release
from pipelines.models import (
    Pipeline,
)

PEEK_MAX = 100
PEEK_HOLD_SECONDS = 30


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
        raise RedriveError(queue_problem(exc, pipeline.dlq_url, "the DLQ")) from exc
    finally:
        release(target, pipeline.dlq_url, held)
    return list(out.values())
