"""Silences and maintenance windows: times when incidents still open but nobody is paged.

A `Silence` covers the incidents its matchers name (a pipeline, an account, a rule; every set
matcher must match, none set: everything) from `starts_at` until `ends_at`. A `MaintenanceWindow`
covers its pipelines during each weekly occurrence (weekdays, a local start time and a duration, in
its time zone). Which one covers an incident at a given time is answered in one place,
`pipelines.alerting.silences`; the models hold data and the "expire now" compare-and-set.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from pipelines import clock
from pipelines.models.alerting import RuleKind

MAX_WINDOW_MINUTES = 7 * 24 * 60


class SilenceState(models.TextChoices):
    UPCOMING = "upcoming", "Upcoming"
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"

    @property
    def colour(self) -> str:
        return {"upcoming": "#2e90fa", "active": "#7a5af8", "expired": "#98a2b3"}[self.value]


class Silence(models.Model):
    """Hold the notifications of matching incidents from `starts_at` until `ends_at`, with a reason."""

    pipeline = models.ForeignKey(
        "pipelines.Pipeline",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="silences",
        help_text="Empty: any pipeline.",
    )
    account = models.ForeignKey(
        "pipelines.AwsAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="silences",
        help_text="Empty: any account.",
    )
    rule = models.CharField(
        max_length=16, choices=RuleKind.choices, blank=True, help_text="Empty: any rule. All three empty: everything."
    )
    starts_at = models.DateTimeField("starts", default=clock.now)
    ends_at = models.DateTimeField("ends")
    reason = models.CharField(
        max_length=500, help_text="Why nobody should be paged; it shows on every incident this silence covers."
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-ends_at", "-pk"]
        indexes = [models.Index(fields=["ends_at", "starts_at"])]

    def __str__(self) -> str:
        return f"Silence #{self.pk}: {self.matchers}"

    def clean(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The end must be after the start."})

    @property
    def matchers(self) -> str:
        """What it covers, in words: "pipeline orders · Backlog above threshold", or "everything"."""
        parts = []
        if self.pipeline_id:
            parts.append(f"pipeline {self.pipeline.name}")
        if self.account_id:
            parts.append(f"account {self.account.name}")
        if self.rule:
            parts.append(self.get_rule_display())
        return " · ".join(parts) or "everything"

    def state(self, at: datetime | None = None) -> SilenceState:
        at = at or clock.now()
        if at < self.starts_at:
            return SilenceState.UPCOMING
        return SilenceState.ACTIVE if at < self.ends_at else SilenceState.EXPIRED

    def expire(self, at: datetime | None = None) -> bool:
        """End it now (an upcoming one never starts). Compare-and-set: False if it had already ended."""
        at = at or clock.now()
        live = Silence.objects.filter(pk=self.pk, ends_at__gt=at)
        done = live.filter(starts_at__gt=at).update(starts_at=at, ends_at=at) or live.update(ends_at=at)
        if done != 1:
            return False
        self.starts_at, self.ends_at = min(self.starts_at, at), at
        return True


class Weekday(models.IntegerChoices):
    """Python's numbering (`datetime.weekday()`): Monday is 0."""

    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            f"Unknown time zone {value!r}: use an IANA name such as Europe/Berlin, America/New_York or UTC."
        ) from None


def validate_weekdays(value) -> None:
    if not isinstance(value, list) or not value or any(d not in Weekday.values for d in value):
        raise ValidationError("Choose at least one weekday.")


class MaintenanceWindow(models.Model):
    """A weekly window (deploys, say) during which its pipelines' incidents are silenced.

    Each occurrence starts at `start_time` on the wall clock of `time_zone` on each chosen weekday and
    lasts `duration_minutes` of real time, so it follows daylight-saving changes."""

    name = models.CharField(max_length=100, unique=True)
    pipelines = models.ManyToManyField(
        "pipelines.Pipeline",
        blank=True,
        related_name="maintenance_windows",
        help_text="The pipelines it silences (none chosen: none).",
    )
    weekdays = models.JSONField(default=list, validators=[validate_weekdays], help_text="Monday is 0.")
    start_time = models.TimeField(help_text="Local time in the window's time zone, e.g. 22:00.")
    duration_minutes = models.PositiveIntegerField(
        "duration (minutes)", validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_MINUTES)]
    )
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="An IANA name, e.g. Europe/Berlin."
    )
    reason = models.CharField(max_length=500, help_text="Shows on every incident the window covers.")
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def schedule(self) -> str:
        """ "Tuesday 22:00 for 60 min (Europe/Berlin)" """
        days = ", ".join(Weekday(d).label for d in sorted(self.weekdays or []))
        return f"{days or 'no day'} {self.start_time:%H:%M} for {self.duration_minutes} min ({self.time_zone})"
