"""Running DLQ tasks on workers: claim, run to the end with the chosen engine, resume the abandoned."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce

from pipelines import aws, clock
from pipelines.dlq import service
from pipelines.dlq.batch import run_batch
from pipelines.dlq.native import run_native
from pipelines.dlq.queues import RedriveError
from pipelines.dlq.worker import LostOwnership, Run
from pipelines.models import (
    DlqOperation,
    RedriveEngine,
    RedriveStatus,
    RedriveTask,
)

log = logging.getLogger(__name__)
#: A running task without a heartbeat for this long is considered abandoned and resumed.
STALE_SECONDS = 120
#: Runs of one task before it is declared failed (a task that kills its worker every time).
MAX_ATTEMPTS = 5


def claim(task_id: int) -> tuple[RedriveTask, str] | None:
    """Take a task to run: a pending one, or an active one whose worker stopped beating. CAS."""
    token = secrets.token_hex(16)
    at = clock.now()
    stale = Q(heartbeat_at__lt=at - timedelta(seconds=STALE_SECONDS)) | Q(heartbeat_at__isnull=True)
    common = {
        "run_token": token,
        "heartbeat_at": at,
        "attempts": F("attempts") + 1,
        "started_at": Coalesce("started_at", Value(at, output_field=DateTimeField())),
    }
    rows = RedriveTask.objects.filter(pk=task_id)
    taken = rows.filter(status=RedriveStatus.PENDING).update(status=RedriveStatus.RUNNING, **common)
    if not taken:
        taken = rows.filter(stale, status__in=[RedriveStatus.RUNNING, RedriveStatus.CANCELLING]).update(**common)
    if not taken:
        return None
    return RedriveTask.objects.select_related("pipeline__account").get(pk=task_id), token


def run_redrive(task_id: int) -> RedriveTask | None:
    """Run (or resume) a task to its end in this process. Returns the task, or None when it was not
    ours to run (finished, or running on a live worker)."""
    claimed = claim(task_id)
    if claimed is None:
        return None
    task, token = claimed
    run = Run(task, token)
    try:
        if task.attempts > MAX_ATTEMPTS:
            raise RedriveError(f"Gave up after {MAX_ATTEMPTS} attempts: the task's worker kept stopping.")
        if task.operation == DlqOperation.PURGE:
            raise RedriveError("The purge was interrupted before SQS confirmed it; check the DLQ's depth.")
        if task.pipeline is None:
            raise RedriveError("The pipeline was deleted.")
        if task.attempts > 1:
            log.warning("resuming %s (attempt %d)", task, task.attempts)
        if task.engine == RedriveEngine.NATIVE:
            run_native(run)
        else:
            run_batch(run)
    except LostOwnership:
        log.warning("%s was taken over by another worker; this one stops", task)
        run.release_all()
    except Exception as exc:
        if not isinstance(exc, RedriveError | aws.AwsError):
            log.exception("%s failed", task)
        run.release_all()
        message = str(exc) if isinstance(exc, RedriveError | aws.AwsError) else f"{type(exc).__name__}: {exc}"
        run.finish(RedriveStatus.FAILED, error=message)
    return RedriveTask.objects.get(pk=task_id)


def resume_stale_redrives() -> list[int]:
    """Re-service.enqueue tasks whose worker died (no heartbeat for STALE_SECONDS) and pending tasks that no
    worker picked up. Safe to run anywhere, any number of times: a run starts only if it claims."""
    cutoff = clock.now() - timedelta(seconds=STALE_SECONDS)
    ids = list(
        RedriveTask.objects.filter(
            Q(status__in=[RedriveStatus.RUNNING, RedriveStatus.CANCELLING], heartbeat_at__lt=cutoff)
            | Q(status=RedriveStatus.PENDING, created_at__lt=cutoff)
        ).values_list("pk", flat=True)
    )
    for pk in ids:
        log.warning("redrive task #%s has no live worker; enqueueing it again", pk)
        service.enqueue(pk)
    return ids
