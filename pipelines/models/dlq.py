"""Dead-letter queue operations: one `RedriveTask` row per operator action, with its lifecycle."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models

from pipelines import clock
from pipelines.models.registry import Pipeline


class RedriveStatus(models.TextChoices):
    """A DLQ task's lifecycle; pending, running and cancelling are active (one per DLQ at a time)."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"

    @property
    def colour(self) -> str:
        return {
            "pending": "#98a2b3",
            "running": "#2e90fa",
            "cancelling": "#f79009",
            "cancelled": "#667085",
            "completed": "#12b76a",
            "failed": "#d92d20",
        }[self.value]

    @property
    def is_active(self) -> bool:
        return self.value in ACTIVE_REDRIVE_STATUSES


ACTIVE_REDRIVE_STATUSES = ("pending", "running", "cancelling")
#: Messages a dry run examines at most.
DRY_RUN_SAMPLE = 100


class RedriveEngine(models.TextChoices):
    NATIVE = "native", "SQS message move task"
    BATCH = "batch", "Receive, send, delete (batches of 10)"


class DlqOperation(models.TextChoices):
    REDRIVE = "redrive", "Redrive"
    DELETE = "delete", "Delete messages"
    PURGE = "purge", "Purge"


class FilterKind(models.TextChoices):
    NONE = "", "All messages"
    ATTRIBUTE = "attribute", "Message attribute equals"
    BODY = "body", "Body contains"
    REQUEST_IDS = "request_ids", "Request ids"
    MESSAGE_IDS = "message_ids", "Message ids"
    #: A search or a triage group: several criteria at once, kept as JSON in `filter_value`.
    SEARCH = "search", "Search"


class RedriveTask(models.Model):
    """One operator action on a dead-letter queue — a redrive, a deletion of chosen messages, or a
    purge — with who asked, what was asked, what happened, and its progress.

    History is kept here (AWS lists only the last 10 move tasks of a queue). At most one task per
    DLQ is active at a time, enforced by a partial unique index. Workers claim a task and record a
    heartbeat and counts after every batch, so a task whose worker died is resumed from there.
    """

    pipeline = models.ForeignKey(Pipeline, null=True, on_delete=models.SET_NULL, related_name="redrive_tasks")
    pipeline_name = models.CharField(max_length=100)
    operation = models.CharField(max_length=16, choices=DlqOperation.choices, default=DlqOperation.REDRIVE)
    source_url = models.CharField("DLQ URL", max_length=1024)
    source_arn = models.CharField("DLQ ARN", max_length=1024, blank=True)
    destination_url = models.CharField("destination URL", max_length=1024, blank=True)
    destination_arn = models.CharField("destination ARN", max_length=1024, blank=True)
    engine = models.CharField(max_length=16, choices=RedriveEngine.choices, blank=True)
    status = models.CharField(max_length=16, choices=RedriveStatus.choices, default=RedriveStatus.PENDING)

    # Options.
    dry_run = models.BooleanField(default=False)
    max_messages = models.PositiveIntegerField(null=True, blank=True, help_text="Stop after moving this many.")
    rate = models.PositiveIntegerField("rate (messages/s)", null=True, blank=True)
    filter_kind = models.CharField(max_length=16, choices=FilterKind.choices, blank=True)
    filter_attribute = models.CharField(max_length=256, blank=True)
    filter_value = models.TextField(blank=True, help_text="The value or substring, or ids one per line.")

    # Outcome.
    depth_at_start = models.PositiveIntegerField("DLQ depth at start", null=True, blank=True)
    matched = models.PositiveIntegerField(default=0, help_text="Examined and selected (by the filter, if any).")
    moved = models.PositiveIntegerField(
        default=0, help_text="Sent to the destination and deleted from the DLQ (deleted, for a deletion)."
    )
    failed = models.PositiveIntegerField(default=0, help_text="Selected but not moved; they stay in the DLQ.")
    skipped = models.PositiveIntegerField(default=0, help_text="Examined and not selected; they stay in the DLQ.")
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    sample = models.JSONField(default=list, blank=True, help_text="Dry run: the sampled messages (ids, no bodies).")

    # Audit.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    cancelled_by_name = models.CharField(max_length=150, blank=True)
    request_token = models.CharField(
        max_length=64, blank=True, help_text="Makes a double-submitted form start one task."
    )
    created_at = models.DateTimeField(default=clock.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Execution state.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Runs so far (more than one: resumed).")
    run_token = models.CharField(max_length=32, blank=True)
    sent_ids = models.JSONField(default=list, blank=True, help_text="Sent, not yet confirmed deleted from the DLQ.")
    native_handle = models.CharField(max_length=1024, blank=True)
    native_started_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "DLQ task"
        indexes = [models.Index(fields=["source_url", "created_at"]), models.Index(fields=["status", "heartbeat_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["source_url"],
                condition=models.Q(status__in=ACTIVE_REDRIVE_STATUSES),
                name="uniq_active_task_per_dlq",
                violation_error_message="Another task is already active on this dead-letter queue.",
            ),
            models.UniqueConstraint(
                fields=["request_token"], condition=~models.Q(request_token=""), name="uniq_task_request_token"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_operation_display().lower()} {self.pipeline_name}"

    @property
    def status_choice(self) -> RedriveStatus:
        return RedriveStatus(self.status)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_REDRIVE_STATUSES

    @property
    def examined(self) -> int:
        return self.matched + self.skipped

    def filter_ids(self) -> list[str]:
        return [v for v in self.filter_value.split() if v]

    def filter_description(self) -> str:
        kind = self.filter_kind
        if kind == FilterKind.ATTRIBUTE:
            return f"attribute {self.filter_attribute} = {self.filter_value!r}"
        if kind == FilterKind.BODY:
            return f"body contains {self.filter_value!r}"
        if kind in (FilterKind.REQUEST_IDS, FilterKind.MESSAGE_IDS):
            ids = self.filter_ids()
            return f"{len(ids)} {'request' if kind == FilterKind.REQUEST_IDS else 'message'} id(s)"
        if kind == FilterKind.SEARCH:
            # The search's own words, stored with it (pipelines.dlq.selection.Search.to_json).
            try:
                return f"search: {json.loads(self.filter_value)['summary']}"
            except (ValueError, TypeError, KeyError):
                return "search"
        return "all messages"

    def add_error(self, message: str, limit: int = 100, **detail) -> None:
        """Record an error (the newest `limit` are kept; `error_count` counts them all)."""
        self.errors = [*self.errors, {"at": clock.now().isoformat(timespec="seconds"), "message": message, **detail}][
            -limit:
        ]
        self.error_count += 1

    def request_cancel(self, by: str = "") -> bool:
        """Cancel: a pending task stops at once, a running one at its next batch. Compare-and-set."""
        at = clock.now()
        if (
            RedriveTask.objects.filter(pk=self.pk, status=RedriveStatus.PENDING).update(
                status=RedriveStatus.CANCELLED, finished_at=at, cancelled_by_name=by
            )
            == 1
        ):
            self.status, self.finished_at, self.cancelled_by_name = RedriveStatus.CANCELLED, at, by
            return True
        if (
            RedriveTask.objects.filter(pk=self.pk, status=RedriveStatus.RUNNING).update(
                status=RedriveStatus.CANCELLING, cancelled_by_name=by
            )
            == 1
        ):
            self.status, self.cancelled_by_name = RedriveStatus.CANCELLING, by
            return True
        return False
