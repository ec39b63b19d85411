"""DLQ triage: one `TriageScan` per scan of a dead-letter queue, its failure groups and their messages.

A scan receives the whole DLQ (up to a cap), joins each message to its last failed invocation in the
consumer's log and groups the messages by failure signature (`pipelines.dlq.triage`). Scans are kept,
so a group's size can be compared across scans by its signature; the per-message rows of old scans
are dropped after a while (`TRIAGE_KEEP_SCANS`), their groups stay.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pipelines import clock
from pipelines.models.registry import Pipeline


class TriageStatus(models.TextChoices):
    """A scan's lifecycle; pending and running are active (one per DLQ at a time)."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Scanning"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"

    @property
    def colour(self) -> str:
        return {"pending": "#98a2b3", "running": "#2e90fa", "completed": "#12b76a", "failed": "#d92d20"}[self.value]


ACTIVE_TRIAGE_STATUSES = ("pending", "running")


class GroupKind(models.TextChoices):
    """What a group's signature was made from."""

    ERROR = "error", "Failure in the consumer's log"
    SHAPE = "shape", "Body shape (no log line found)"


class TriageScan(models.Model):
    """One scan of a pipeline's DLQ: who asked, how far it got, what it cost, what could not be read."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="triage_scans")
    status = models.CharField(max_length=16, choices=TriageStatus.choices, default=TriageStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    cap = models.PositiveIntegerField(help_text="The most messages the scan examines.")
    depth_at_start = models.PositiveIntegerField("DLQ depth at start", null=True, blank=True)
    examined = models.PositiveIntegerField(default=0, help_text="Distinct messages received and looked at.")
    joined = models.PositiveIntegerField(default=0, help_text="Messages matched to a failure in the consumer's log.")
    gone = models.PositiveIntegerField(default=0, help_text="Messages deleted by someone else during the scan.")
    complete = models.BooleanField(default=False, help_text="Every message of the DLQ was examined.")
    stopped = models.CharField(max_length=16, blank=True, help_text="Why the scan did not see the whole DLQ.")
    left = models.PositiveIntegerField(default=0, help_text="Messages SQS counted that the scan could not examine.")
    #: Each source read: [{"source": "consumer log /aws/lambda/f", "ok": bool, "message": "…"}].
    sources = models.JSONField(default=list, blank=True)
    sqs_calls = models.PositiveIntegerField(default=0)
    log_calls = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "DLQ triage scan"
        indexes = [models.Index(fields=["pipeline", "status", "created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline"],
                condition=models.Q(status__in=ACTIVE_TRIAGE_STATUSES),
                name="uniq_active_triage_scan_per_pipeline",
                violation_error_message="A scan of this dead-letter queue is already running.",
            ),
        ]

    def __str__(self) -> str:
        return f"scan #{self.pk} of {self.pipeline_id}"

    @property
    def status_choice(self) -> TriageStatus:
        return TriageStatus(self.status)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_TRIAGE_STATUSES

    def progress_percent(self) -> int | None:
        """How far the scan is, against the DLQ's depth at start (None while that is unknown)."""
        if self.status == TriageStatus.COMPLETED:
            return 100
        total = min(self.cap, self.depth_at_start or 0)
        return min(99, int(100 * self.examined / total)) if total else None


class TriageGroup(models.Model):
    """The messages of one scan that share a failure signature."""

    scan = models.ForeignKey(TriageScan, on_delete=models.CASCADE, related_name="groups")
    signature = models.CharField(max_length=64, help_text="A digest of the normalised failure; equal across scans.")
    kind = models.CharField(max_length=8, choices=GroupKind.choices)
    title = models.CharField(max_length=300, help_text="The normalised failure, as the group is named.")
    count = models.PositiveIntegerField()
    first_sent = models.DateTimeField(null=True, blank=True)
    last_sent = models.DateTimeField(null=True, blank=True)
    receive_min = models.PositiveIntegerField(default=0)
    receive_max = models.PositiveIntegerField(default=0)
    receive_total = models.PositiveBigIntegerField(default=0)
    sample_error = models.TextField(blank=True, help_text="One failure line as the consumer logged it.")
    sample_traceback = models.TextField(blank=True)
    sample_message_ids = models.JSONField(default=list, blank=True)
    request_ids = models.JSONField(default=list, blank=True, help_text="Some of the group's request ids.")
    #: The same signature's count in the pipeline's previous completed scan (None: it was not there).
    previous_count = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-count", "title"]
        constraints = [models.UniqueConstraint(fields=["scan", "signature"], name="uniq_triage_group_signature")]
        indexes = [models.Index(fields=["signature"])]

    def __str__(self) -> str:
        return f"{self.title} ({self.count})"

    @property
    def is_new(self) -> bool:
        return self.previous_count is None

    @property
    def receive_avg(self) -> float | None:
        return self.receive_total / self.count if self.count else None


class TriageMessage(models.Model):
    """One message a scan examined: enough to search it and to act on its group (no body, no values)."""

    scan = models.ForeignKey(TriageScan, on_delete=models.CASCADE, related_name="messages")
    group = models.ForeignKey(TriageGroup, on_delete=models.CASCADE, related_name="messages")
    message_id = models.CharField(max_length=128)
    request_id = models.CharField(max_length=128, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    receive_count = models.PositiveIntegerField(default=0)
    message_group_id = models.CharField("FIFO message group", max_length=128, blank=True)
    invocation_id = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scan", "message_id"], name="uniq_triage_message")]
        indexes = [models.Index(fields=["scan", "request_id"])]
