"""Starting DLQ actions: a redrive (all, or a filtered selection), a deletion of chosen messages, a purge.

Each is checked first (the queues exist, their types match, the options make sense), recorded as a
`RedriveTask` row (who, what, when), written to the audit trail (with the address and the way it came:
the admin UI or the API) and handed to a worker once the row is committed. At most one task per DLQ is
active, enforced by the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from pipelines import access, aws, clock, jobs
from pipelines.dlq.filters import ALL_MESSAGES, Filter
from pipelines.dlq.queues import NATIVE_UNSUPPORTED, QueueInfo, RedriveError, dlq_info, queue_info
from pipelines.models import (
    ACTIVE_REDRIVE_STATUSES,
    AuditAction,
    AuditEntry,
    AuditThrough,
    AwsAccount,
    DlqOperation,
    FilterKind,
    Pipeline,
    RedriveEngine,
    RedriveStatus,
    RedriveTask,
)
from pipelines.registry.discovery import DiscoveryError, parse_queue_url

log = logging.getLogger(__name__)
#: StartMessageMoveTask's ceiling for MaxNumberOfMessagesPerSecond.
MAX_RATE = 500
#: The largest "max messages" a task takes (an empty maximum moves them all); it also fits the task's column.
MAX_MESSAGES = 10_000_000
MAX_MESSAGES_TEXT = f"At most {MAX_MESSAGES:,} messages per task; leave it empty to move all of them."
#: Who may read message bodies, and so filter on them.
BODIES_PERM = "pipelines.view_message_bodies"
#: Filters whose match counts reveal message content: bodies, and attribute values (masked like bodies).
CONTENT_FILTERS = (FilterKind.BODY, FilterKind.ATTRIBUTE)


def choose_engine(
    account: AwsAccount,
    *,
    operation: str = DlqOperation.REDRIVE,
    flt: Filter = ALL_MESSAGES,
    max_messages: int | None = None,
    dry_run: bool = False,
) -> tuple[str, str]:
    """The engine for a task, and why, in words for the confirmation page."""
    if operation != DlqOperation.REDRIVE:
        return RedriveEngine.BATCH, "deleting chosen messages needs receive and delete"
    if dry_run:
        return RedriveEngine.BATCH, "a dry run samples messages and moves none"
    if flt.kind:
        return RedriveEngine.BATCH, "a filter selects messages one by one (selective redrive)"
    if max_messages:
        return RedriveEngine.BATCH, "SQS's message move task cannot stop after a number of messages"
    if NATIVE_UNSUPPORTED in (account.unsupported_statistics or []):
        return RedriveEngine.BATCH, "this endpoint does not support SQS message move tasks"
    return RedriveEngine.NATIVE, "the whole DLQ moves to one queue: SQS moves it server-side"


@dataclass
class Plan:
    dlq: QueueInfo
    destination: QueueInfo
    engine: str
    engine_reason: str


def plan_redrive(
    pipeline: Pipeline,
    destination_url: str = "",
    *,
    flt: Filter = ALL_MESSAGES,
    max_messages: int | None = None,
    rate: int | None = None,
    dry_run: bool = False,
) -> Plan:
    """Check a redrive before it starts: the DLQ and destination exist, their types match, the
    options make sense. Raises RedriveError with the reason; reads two queues' attributes."""
    flt.validate()
    if max_messages is not None and max_messages < 1:
        raise RedriveError("The maximum number of messages must be at least 1.")
    if max_messages is not None and max_messages > MAX_MESSAGES:
        raise RedriveError(MAX_MESSAGES_TEXT)
    if rate is not None and not 1 <= rate <= MAX_RATE:
        raise RedriveError(f"The rate must be between 1 and {MAX_RATE} messages per second.")
    dlq = dlq_info(pipeline)
    url = (destination_url or "").strip() or pipeline.queue_url
    try:
        parse_queue_url(url)
    except DiscoveryError as exc:
        raise RedriveError(f"Destination: {exc}") from exc
    if url.rstrip("/") == pipeline.dlq_url.rstrip("/"):
        raise RedriveError("The destination is the dead-letter queue itself; choose another queue.")
    dest = queue_info(pipeline.account.target(), url, "the destination")
    if dlq.fifo != dest.fifo:
        kinds = ("a FIFO", "a standard") if dlq.fifo else ("a standard", "a FIFO")
        raise RedriveError(
            f"The DLQ is {kinds[0]} queue but {dest.name} is {kinds[1]} queue: messages can only "
            "be redriven between queues of the same type. Nothing was moved."
        )
    if dlq.visible + dlq.in_flight == 0:
        raise RedriveError(f"The DLQ {dlq.name} is empty: there is nothing to redrive.")
    engine, reason = choose_engine(pipeline.account, flt=flt, max_messages=max_messages, dry_run=dry_run)
    return Plan(dlq=dlq, destination=dest, engine=engine, engine_reason=reason)


def enqueue(task_id: int) -> None:
    """Run the task on a worker once the row is committed (in-process with CELERY_TASK_ALWAYS_EAGER)."""
    transaction.on_commit(lambda: jobs.submit(jobs.RUN_REDRIVE, task_id))


def already_requested(
    token: str, user=None, pipeline: Pipeline | None = None, operation: str = ""
) -> RedriveTask | None:
    """The task a form (or an API call) with this token already started (a double submit), if any. A
    token is only ever the requester's own: one used by someone else, on another pipeline or for
    another kind of task is refused, and reveals nothing of that task."""
    task = RedriveTask.objects.filter(request_token=token).first() if token else None
    if task is None:
        return None
    requester = user.pk if _username(user) else None
    if (
        task.requested_by_id != requester
        or (pipeline is not None and task.pipeline_id != pipeline.pk)
        or (operation and task.operation != operation)
    ):
        raise RedriveError(
            "This request's token was already used for another request; nothing was started. Use a new token."
        )
    return task


def _username(user) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else ""


def _audit(action: AuditAction, task: RedriveTask, user, remote_addr: str | None, through: AuditThrough) -> None:
    """One audit entry for a task just started (or cancelled): what it does to which queue."""
    AuditEntry.record(
        action,
        user,
        task.pipeline,
        remote_addr=remote_addr,
        through=through,
        task=task.pk,
        operation=task.operation,
        queue_url=task.source_url,
        filter=task.filter_description(),
        depth=task.depth_at_start,
        **(
            {
                "destination": task.destination_url,
                "engine": task.engine,
                "dry_run": task.dry_run,
                "max_messages": task.max_messages,
                "rate": task.rate,
            }
            if task.operation == DlqOperation.REDRIVE
            else {}
        ),
    )


def _save_new(task: RedriveTask) -> tuple[RedriveTask, bool]:
    """Insert the task; a second submit of the same form gets the first task back, and a task on a
    DLQ that already has an active one is refused, by the database's unique constraints."""
    try:
        with transaction.atomic():
            task.save()
        return task, True
    except IntegrityError:
        if existing := already_requested(task.request_token, task.requested_by, task.pipeline, task.operation):
            return existing, False
        active = RedriveTask.objects.filter(source_url=task.source_url, status__in=ACTIVE_REDRIVE_STATUSES).first()
        if active is None:
            raise
        who = f" by {active.requested_by_name}" if active.requested_by_name else ""
        raise RedriveError(
            f"Another task is already active on this dead-letter queue: #{active.pk} "
            f"({active.get_operation_display().lower()}, {active.get_status_display().lower()}, "
            f"started{who} at {active.created_at:%Y-%m-%d %H:%M:%S} UTC). Wait for it to finish or cancel it; "
            "nothing new was started.",
            task=active,
        ) from None


def start_redrive(
    pipeline: Pipeline,
    user=None,
    *,
    destination_url: str = "",
    max_messages: int | None = None,
    rate: int | None = None,
    flt: Filter = ALL_MESSAGES,
    dry_run: bool = False,
    token: str = "",
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> tuple[RedriveTask, bool]:
    """Check, record, audit and enqueue a redrive. Returns (task, created); created is False when `token`
    was already used (a double-submitted form) and the task is the one it started.

    A body or attribute-value filter needs a user who may read bodies: its match counts say what the
    messages contain."""
    _check_content(flt, user, pipeline)
    if existing := already_requested(token, user, pipeline, DlqOperation.REDRIVE):
        return existing, False
    plan = plan_redrive(pipeline, destination_url, flt=flt, max_messages=max_messages, rate=rate, dry_run=dry_run)
    task = RedriveTask(
        pipeline=pipeline,
        pipeline_name=pipeline.name,
        operation=DlqOperation.REDRIVE,
        source_url=pipeline.dlq_url,
        source_arn=plan.dlq.arn or pipeline.dlq_arn,
        destination_url=plan.destination.url,
        destination_arn=plan.destination.arn,
        engine=plan.engine,
        dry_run=dry_run,
        max_messages=max_messages,
        rate=rate,
        depth_at_start=plan.dlq.visible + plan.dlq.in_flight,
        requested_by=user if _username(user) else None,
        requested_by_name=_username(user),
        request_token=token,
        **flt.task_fields(),
    )
    task, created = _save_new(task)
    if created:
        log.info("redrive #%s of %s started by %s (%s)", task.pk, pipeline.name, task.requested_by_name, task.engine)
        _audit(AuditAction.DLQ_REDRIVE, task, user, remote_addr, through)
        enqueue(task.pk)
    return task, created


def _check_content(flt: Filter, user, pipeline: Pipeline) -> None:
    """A filter on bodies or attribute values needs the permission to read bodies on this pipeline."""
    if flt.needs_bodies() and _username(user) and not user.has_perm(BODIES_PERM, pipeline):
        raise RedriveError(
            "Filtering on message bodies or attribute values needs the permission to view message bodies."
        )


def start_delete(
    pipeline: Pipeline,
    user,
    message_ids: list[str],
    token: str = "",
    *,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> tuple[RedriveTask, bool]:
    """Delete the given messages from the DLQ (found by scanning it; the others stay)."""
    flt = Filter(FilterKind.MESSAGE_IDS, ids=frozenset(message_ids))
    return start_delete_selection(pipeline, user, flt, token, remote_addr=remote_addr, through=through)


def start_delete_selection(
    pipeline: Pipeline,
    user,
    flt: Filter,
    token: str = "",
    *,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> tuple[RedriveTask, bool]:
    """Delete the messages a filter selects from the DLQ (found by scanning it; the others stay)."""
    _check_content(flt, user, pipeline)
    if existing := already_requested(token, user, pipeline, DlqOperation.DELETE):
        return existing, False
    if not flt.kind:
        raise RedriveError("Choose the messages to delete; to delete them all, purge the DLQ.")
    flt.validate()
    dlq = dlq_info(pipeline)
    task = RedriveTask(
        pipeline=pipeline,
        pipeline_name=pipeline.name,
        operation=DlqOperation.DELETE,
        source_url=pipeline.dlq_url,
        source_arn=dlq.arn,
        engine=RedriveEngine.BATCH,
        depth_at_start=dlq.visible + dlq.in_flight,
        requested_by=user if _username(user) else None,
        requested_by_name=_username(user),
        request_token=token,
        **flt.task_fields(),
    )
    task, created = _save_new(task)
    if created:
        log.info(
            "deletion #%s of %s from %s by %s",
            task.pk,
            task.filter_description(),
            pipeline.name,
            task.requested_by_name,
        )
        _audit(AuditAction.DLQ_DELETE, task, user, remote_addr, through)
        enqueue(task.pk)
    return task, created


def purge(
    pipeline: Pipeline,
    user=None,
    token: str = "",
    *,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> RedriveTask:
    """Purge the DLQ (one PurgeQueue call), recorded and audited like any other task (audited once
    asked for, whether SQS then purges or refuses)."""
    if existing := already_requested(token, user, pipeline, DlqOperation.PURGE):
        return existing
    dlq = dlq_info(pipeline)
    at = clock.now()
    task, created = _save_new(
        RedriveTask(
            pipeline=pipeline,
            pipeline_name=pipeline.name,
            operation=DlqOperation.PURGE,
            source_url=pipeline.dlq_url,
            source_arn=dlq.arn,
            status=RedriveStatus.RUNNING,
            depth_at_start=dlq.visible + dlq.in_flight,
            matched=dlq.visible + dlq.in_flight,
            requested_by=user if _username(user) else None,
            requested_by_name=_username(user),
            request_token=token,
            started_at=at,
            heartbeat_at=at,
            attempts=1,
        )
    )
    if created:
        _audit(AuditAction.DLQ_PURGE, task, user, remote_addr, through)
    try:
        aws.purge_queue(pipeline.account.target(), pipeline.dlq_url)
    except aws.AwsError as exc:
        task.add_error(str(exc))
        RedriveTask.objects.filter(pk=task.pk, status=RedriveStatus.RUNNING).update(
            status=RedriveStatus.FAILED, finished_at=clock.now(), errors=task.errors, error_count=task.error_count
        )
        task.refresh_from_db()
        raise RedriveError(f"The purge failed: {exc}", task=task) from exc
    RedriveTask.objects.filter(pk=task.pk, status=RedriveStatus.RUNNING).update(
        status=RedriveStatus.COMPLETED, finished_at=clock.now()
    )
    log.info("purge #%s of %s by %s", task.pk, pipeline.name, task.requested_by_name)
    task.refresh_from_db()
    return task


def cancel_perm(task: RedriveTask) -> str:
    """Cancelling a task needs the permission that starts one like it."""
    return access.REDRIVE if task.operation == DlqOperation.REDRIVE else access.DELETE


def cancel(
    task: RedriveTask, user=None, *, remote_addr: str | None = None, through: AuditThrough = AuditThrough.UI
) -> bool:
    """Cancel a task (compare-and-set: False when it had finished); audited only when it was cancelled."""
    if not task.request_cancel(_username(user)):
        return False
    _audit(AuditAction.DLQ_CANCEL, task, user, remote_addr, through)
    return True
