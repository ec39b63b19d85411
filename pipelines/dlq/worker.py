"""One worker's run of a DLQ task: its claim token, its checkpoints and the messages it holds.

Every state change is a compare-and-set on (pk, run token, status): a cancelled task or one taken
over by another worker is noticed at the next checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipelines import aws, clock
from pipelines.dlq.filters import MAX_IDS
from pipelines.dlq.queues import release
from pipelines.models import (
    RedriveStatus,
    RedriveTask,
)

log = logging.getLogger(__name__)
#: Seconds a task keeps the messages it received invisible (renewed while it still needs them).
#: Also how long the messages a dead worker held take to come back.
HOLD_SECONDS = 180
TRANSIENT_RETRIES = 3
sleep = time.sleep  # module-level so tests can skip waiting
monotonic = time.monotonic


class LostOwnership(Exception):
    """Another worker took the task over (this one was thought dead)."""


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
            "heartbeat_at": clock.now(),
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
        ).update(status=status, finished_at=clock.now(), **fields)
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
        t.errors = [*t.errors, {"at": clock.now().isoformat(timespec="seconds"), "message": message, "level": "info"}][
            -100:
        ]

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


def retrying(fn, *args):
    """Call an aws function, retrying transient failures (beyond botocore's own) with backoff."""
    for attempt in range(TRANSIENT_RETRIES + 1):
        try:
            return fn(*args)
        except aws.AwsError as exc:
            if not exc.transient or attempt == TRANSIENT_RETRIES:
                raise
            sleep(2**attempt)
    raise AssertionError("unreachable")
