"""The native engine: SQS's own `StartMessageMoveTask` for a whole DLQ to one queue, polled with
`ListMessageMoveTasks` and cancelled with `CancelMessageMoveTask`. An endpoint that lacks these
operations (the emulator does) is remembered on the account and the batch engine takes over.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pipelines import aws
from pipelines.dlq import worker
from pipelines.dlq.batch import run_batch
from pipelines.dlq.queues import NATIVE_UNSUPPORTED, SQS_UNSUPPORTED_CODES, RedriveError
from pipelines.dlq.worker import LostOwnership, Run, retrying
from pipelines.models import (
    AwsAccount,
    RedriveEngine,
    RedriveStatus,
    RedriveTask,
)

log = logging.getLogger(__name__)

#: How often the native engine polls ListMessageMoveTasks.
NATIVE_POLL_SECONDS = 5


def remember_native_unsupported(account: AwsAccount) -> None:
    if NATIVE_UNSUPPORTED not in (account.unsupported_statistics or []):
        log.warning(
            "the SQS endpoint of account %s does not support message move tasks; using the batch engine", account.name
        )
        account.unsupported_statistics = [*(account.unsupported_statistics or []), NATIVE_UNSUPPORTED]
        AwsAccount.objects.filter(pk=account.pk).update(unsupported_statistics=account.unsupported_statistics)


def find_move_task(results: list[dict[str, Any]], handle: str, started_ms: int | None) -> dict[str, Any] | None:
    """Our task among ListMessageMoveTasks results: by handle while it runs (AWS drops the handle
    once it ends), else the earliest one started since ours was (one active task per queue)."""
    for r in results:
        if r.get("TaskHandle") == handle:
            return r
    if started_ms is None:
        return None
    later = [r for r in results if not r.get("TaskHandle") and int(r.get("StartedTimestamp") or 0) >= started_ms]
    return min(later, key=lambda r: int(r.get("StartedTimestamp") or 0)) if later else None


def run_native(run: Run) -> None:
    task, target = run.task, run.target
    if not task.native_handle:
        started_ms = int(time.time() * 1000) - 60_000  # allow for clock skew against AWS
        try:
            handle = aws.start_message_move_task(target, task.source_arn, task.destination_arn, task.rate)
        except aws.AwsError as exc:
            if exc.code == aws.UNSUPPORTED or exc.code in SQS_UNSUPPORTED_CODES:
                if exc.code == aws.UNSUPPORTED:  # the endpoint lacks it: do not ask again on this account
                    remember_native_unsupported(task.pipeline.account)
                _switch_to_batch(
                    run, f"SQS's message move task is not available ({exc}); moved with the batch engine instead."
                )
                return run_batch(run)
            raise
        if not RedriveTask.objects.filter(pk=task.pk, run_token=run.token).update(
            native_handle=handle, native_started_ms=started_ms
        ):
            aws.cancel_message_move_task(target, handle)
            raise LostOwnership
        task.native_handle, task.native_started_ms = handle, started_ms
    cancel_sent, missing = False, 0
    while True:
        if run.checkpoint() == RedriveStatus.CANCELLING and not cancel_sent:
            try:
                aws.cancel_message_move_task(target, task.native_handle)
            except aws.AwsError as exc:  # already finished: the listing below says how
                log.info("cancelling the move task of %s: %s", task, exc)
            cancel_sent = True
        mine = find_move_task(
            retrying(aws.list_message_move_tasks, target, task.source_arn), task.native_handle, task.native_started_ms
        )
        if mine is None:
            missing += 1
            if missing > 3:
                raise RedriveError("SQS no longer lists this message move task; check the queue in the AWS console.")
        else:
            missing = 0
            task.moved = int(mine.get("ApproximateNumberOfMessagesMoved") or 0)
            task.matched = int(mine.get("ApproximateNumberOfMessagesToMove") or task.matched or 0)
            state = mine.get("Status")
            if state == "COMPLETED":
                run.finish(RedriveStatus.COMPLETED)
                return
            if state == "CANCELLED":
                run.finish(RedriveStatus.CANCELLED)
                return
            if state == "FAILED":
                task.failed = max(0, task.matched - task.moved)
                run.finish(
                    RedriveStatus.FAILED,
                    error=f"SQS's move task failed: {mine.get('FailureReason') or 'no reason given'}",
                )
                return
            run.checkpoint()  # the progress shows while SQS works
        worker.sleep(NATIVE_POLL_SECONDS)


def _switch_to_batch(run: Run, why: str) -> None:
    if not RedriveTask.objects.filter(pk=run.task.pk, run_token=run.token, engine=RedriveEngine.NATIVE).update(
        engine=RedriveEngine.BATCH
    ):
        raise LostOwnership
    run.task.engine = RedriveEngine.BATCH
    run.note(why)
    log.info("%s: %s", run.task, why)
