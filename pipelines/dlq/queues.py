"""The queues a DLQ action reads: attributes, errors in an operator's words, releasing held messages."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines import aws
from pipelines.models import (
    Pipeline,
    RedriveTask,
)

log = logging.getLogger(__name__)
#: Marker in AwsAccount.unsupported_statistics: the endpoint lacks SQS message move tasks.
NATIVE_UNSUPPORTED = "sqs:StartMessageMoveTask"
#: AWS's answer when it will not move this queue's messages natively (not an endpoint-wide lack).
SQS_UNSUPPORTED_CODES = {"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation"}


class RedriveError(Exception):
    """A DLQ action cannot start or continue; `str()` says why, for the operator.

    `task` is the task in the way, when another one is already active on the DLQ.
    """

    def __init__(self, message: str, task: RedriveTask | None = None):
        super().__init__(message)
        self.task = task


@dataclass
class QueueInfo:
    url: str
    arn: str
    fifo: bool
    visible: int
    in_flight: int

    @property
    def name(self) -> str:
        return queue_name(self.url)


def queue_name(url: str) -> str:
    """A queue's name from its URL (what an operator types to confirm a delete or a purge)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def queue_problem(exc: aws.AwsError, url: str, what: str) -> str:
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
        raise RedriveError(queue_problem(exc, url, what)) from exc
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
