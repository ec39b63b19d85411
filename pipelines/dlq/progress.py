"""What a DLQ task reports while it runs and after: its share done and one sentence an operator reads first.

The progress page polls `progress(task)`; the history rows and the task page show `summary(task)`.
"""

from __future__ import annotations

from pipelines.models import DRY_RUN_SAMPLE, DlqOperation, FilterKind, RedriveEngine, RedriveStatus, RedriveTask


def expected_total(task: RedriveTask) -> int | None:
    """How many messages the task expects to examine (None: unknown)."""
    if task.filter_kind == FilterKind.MESSAGE_IDS:
        return len(task.filter_ids())
    if task.dry_run:
        return min(task.max_messages or DRY_RUN_SAMPLE, DRY_RUN_SAMPLE, task.depth_at_start or DRY_RUN_SAMPLE)
    if task.engine == RedriveEngine.NATIVE:
        return task.matched or task.depth_at_start
    if task.max_messages and not task.filter_kind:
        return min(task.max_messages, task.depth_at_start or task.max_messages)
    return task.depth_at_start


def percent(task: RedriveTask) -> int:
    if task.status == RedriveStatus.COMPLETED:
        return 100
    total = expected_total(task)
    if not total:
        return 0
    if task.filter_kind == FilterKind.MESSAGE_IDS:
        done = task.matched  # of the chosen messages, found so far
    elif task.dry_run or (task.filter_kind and task.engine != RedriveEngine.NATIVE):
        done = task.examined
    else:
        done = task.moved + task.failed
    return max(0, min(99, int(100 * done / total)))


def summary(task: RedriveTask) -> str:
    """One sentence an operator reads first."""
    s = RedriveStatus(task.status)
    if task.operation == DlqOperation.PURGE:
        if s == RedriveStatus.COMPLETED:
            return f"Purged the DLQ ({task.matched} message(s) at the time)."
        return "Purging." if task.is_active else "The purge failed; nothing was deleted."
    verb = "deleted" if task.operation == DlqOperation.DELETE else "moved"
    if task.dry_run:
        if s == RedriveStatus.COMPLETED:
            return f"Dry run: {task.matched} of {task.examined} sampled message(s) would move; nothing was moved."
        return "Dry run: sampling messages." if task.is_active else "The dry run did not finish; nothing was moved."
    if s == RedriveStatus.PENDING:
        return "Waiting for a worker."
    parts = [f"{task.moved} message(s) {verb}"]
    if task.failed:
        parts.append(f"{task.failed} failed and stay in the DLQ")
    if task.skipped:
        parts.append(f"{task.skipped} did not match and stay in the DLQ")
    text = ", ".join(parts)
    if s == RedriveStatus.COMPLETED and task.filter_kind and task.matched == 0:
        return (
            f"The filter ({task.filter_description()}) matched none of the {task.examined} message(s) "
            "examined; nothing was moved."
        )
    if s == RedriveStatus.COMPLETED:
        return f"Done: {text}."
    if s == RedriveStatus.FAILED:
        return f"Failed: {text}. {task.errors[-1]['message'] if task.errors else ''}".strip()
    if s == RedriveStatus.CANCELLED:
        return f"Cancelled: {text}."
    return f"{s.label}: {text} so far."


def progress(task: RedriveTask) -> dict:
    """What the progress page polls."""
    s = RedriveStatus(task.status)
    return {
        "id": task.pk,
        "status": s.value,
        "status_label": s.label,
        "colour": s.colour,
        "active": task.is_active,
        "engine": task.get_engine_display(),
        "dry_run": task.dry_run,
        "matched": task.matched,
        "moved": task.moved,
        "failed": task.failed,
        "skipped": task.skipped,
        "examined": task.examined,
        "total": expected_total(task),
        "percent": percent(task),
        "summary": summary(task),
        "error_count": task.error_count,
        "errors": [e.get("message", "") for e in task.errors[-5:]],
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "started": f"{task.started_at:%Y-%m-%d %H:%M:%S} UTC" if task.started_at else "not yet: waiting for a worker",
        "heartbeat_at": task.heartbeat_at.isoformat() if task.heartbeat_at else None,
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
    }
