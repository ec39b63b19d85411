"""Grouping a scan's messages by failure signature. Pure, tested without AWS or a database.

Each message goes to the group of its last failure's signature (`signatures.signature_of`), or, when
no failure line was found for it, to the group of its body's shape (computed when it was received,
so no body is kept). A group carries what the triage page shows: how many, when they were sent,
how often they were received, one failure line and its traceback, a few message and request ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipelines.dlq.logjoin import FailureLine
from pipelines.dlq.signatures import Signature, signature_of

SAMPLE_MESSAGE_IDS = 5
SAMPLE_REQUEST_IDS = 20
#: A sample line or traceback longer than this is cut (a page shows it; the log has it whole).
SAMPLE_CHARS = 8000


@dataclass
class Examined:
    """A DLQ message as a scan keeps it: ids, send time, receives, and its body's shape, no body."""

    message_id: str
    request_id: str
    sent_ms: int | None
    receive_count: int
    group_id: str
    shape: Signature


@dataclass
class Group:
    signature: Signature
    members: list[tuple[Examined, FailureLine | None]] = field(default_factory=list)
    sample: FailureLine | None = None

    @property
    def count(self) -> int:
        return len(self.members)

    def _sent(self) -> list[int]:
        return [m.sent_ms for m, _ in self.members if m.sent_ms is not None]

    @property
    def first_sent(self) -> datetime | None:
        sent = self._sent()
        return moment(min(sent)) if sent else None

    @property
    def last_sent(self) -> datetime | None:
        sent = self._sent()
        return moment(max(sent)) if sent else None

    @property
    def receives(self) -> tuple[int, int, int]:
        """(min, max, total) receive counts, as SQS counted them when the scan received the messages."""
        counts = [m.receive_count for m, _ in self.members]
        return min(counts), max(counts), sum(counts)

    @property
    def sample_message_ids(self) -> list[str]:
        return [m.message_id for m, _ in self.members[:SAMPLE_MESSAGE_IDS]]

    @property
    def request_ids(self) -> list[str]:
        out: list[str] = []
        for m, _ in self.members:
            if m.request_id and m.request_id not in out:
                out.append(m.request_id)
                if len(out) == SAMPLE_REQUEST_IDS:
                    break
        return out

    @property
    def sample_error(self) -> str:
        return self.sample.message[:SAMPLE_CHARS] if self.sample else ""

    @property
    def sample_traceback(self) -> str:
        return self.sample.traceback[:SAMPLE_CHARS] if self.sample else ""


def moment(ms: int) -> datetime:
    """A SentTimestamp (ms since the epoch) as an aware datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def group_messages(messages: list[Examined], failures: dict[str, FailureLine]) -> list[Group]:
    """The groups, biggest first (then by title); each message in exactly one."""
    groups: dict[str, Group] = {}
    signatures: dict[tuple[str, str], Signature] = {}  # one line may be the last failure of a whole batch
    for m in messages:
        line = failures.get(m.message_id)
        if line is None:
            sig = m.shape
        else:
            key = (line.message, line.traceback)
            sig = signatures.get(key) or signatures.setdefault(key, signature_of(line.message, line.traceback))
        group = groups.get(sig.digest)
        if group is None:
            group = groups[sig.digest] = Group(sig)
        group.members.append((m, line))
        if line is not None and (group.sample is None or line.timestamp > group.sample.timestamp):
            group.sample = line  # the most recent failure speaks for the group
    return sorted(groups.values(), key=lambda g: (-g.count, g.signature.title))
