"""Per-request trace lookups: who looked for which id where, and what was found."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from pipelines import clock
from pipelines.models.registry import Pipeline


class TraceVerdict(models.TextChoices):
    """What a trace lookup concluded about a request; each value has a display colour."""

    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed (retried)"
    #: The last attempt failed and the DLQ search could not establish whether it is there.
    DLQ_UNKNOWN = "dlq_unknown", "Failed; DLQ unknown"
    DLQ = "dlq", "In the DLQ"
    QUEUED = "queued", "Still queued"
    REJECTED = "rejected", "Rejected by the API"
    NOT_FOUND = "not_found", "Not found"

    @property
    def colour(self) -> str:
        return {
            "processed": "#12b76a",
            "failed": "#f79009",
            "dlq_unknown": "#dc6803",
            "dlq": "#d92d20",
            "queued": "#2e90fa",
            "rejected": "#b42318",
            "not_found": "#667085",
        }[self.value]


class TraceLookup(models.Model):
    """One per-request trace lookup: who looked for which id where, and what was found (read-only history)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    ident = models.CharField("id", max_length=128)
    pipeline = models.ForeignKey(
        Pipeline,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: all pipelines were searched.",
    )
    pipeline_name = models.CharField(max_length=100, blank=True, help_text="Empty: all pipelines.")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    verdict = models.CharField(max_length=16, choices=TraceVerdict.choices)
    summary = models.JSONField(default=dict, blank=True)
    calls_made = models.PositiveIntegerField(default=0, help_text="AWS HTTP calls made by the lookup.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["ident"])]

    def __str__(self) -> str:
        return f"{self.ident} ({self.pipeline_name or 'all pipelines'})"

    @property
    def window_hours(self) -> int:
        return max(1, round((self.window_end - self.window_start).total_seconds() / 3600))
