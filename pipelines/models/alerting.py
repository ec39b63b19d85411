"""Alerting data: per-pipeline rule overrides, incidents, notification channels and deliveries.

Lifecycle changes are compare-and-set updates (`filter(pk=…, status=old).update(…)`), so concurrent
workers evaluating the same pipeline neither open two incidents nor notify twice; a partial unique
index backs the first.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from pipelines import clock
from pipelines.models.status import Severity


class RuleKind(models.TextChoices):
    """The alert rules every pipeline has (defaults in alerts.RULES; AlertRule rows override them)."""

    BACKLOG = "backlog", "Backlog above threshold"
    OLDEST_AGE = "oldest_age", "Oldest message above SLA"
    TIME_TO_LOSS = "time_to_loss", "Messages close to expiry"
    DLQ = "dlq", "Messages in the DLQ"
    THROTTLES = "throttles", "Lambda throttles"
    ERRORS = "errors", "Lambda error rate"
    API_5XX = "api_5xx", "API 5xx rate"
    API_LATENCY = "api_latency", "API latency above baseline"
    STALE = "stale", "Syncs failing"
    FORECAST = "forecast", "Backlog forecast"
    # The SRE workbook's multi-window, multi-burn-rate pairs on the SLOs (pipelines/slo/burn.py).
    SLO_FAST = "slo_fast", "SLO budget burning fast (1 h and 5 min)"
    SLO_MEDIUM = "slo_medium", "SLO budget burning (6 h and 30 min)"
    SLO_SLOW = "slo_slow", "SLO budget burning slowly (3 days and 6 h)"


class AlertRule(models.Model):
    """An operator's override of one rule on one pipeline. No row: the rule runs with its defaults."""

    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField("rule", max_length=16, choices=RuleKind.choices)
    enabled = models.BooleanField(default=True)
    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Empty: the default (the rule list in the README says what each rule's threshold means).",
    )
    minutes = models.PositiveIntegerField(
        "for / over (minutes)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text="Empty: the default. How long the condition must hold, or the window it is measured over.",
    )

    class Meta:
        ordering = ["pipeline", "kind"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "kind"], name="uniq_alert_rule_pipeline_kind")]

    def __str__(self) -> str:
        return f"{self.pipeline} · {self.get_kind_display()}"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"

    @property
    def colour(self) -> str:
        return {"open": "#d92d20", "acknowledged": "#f79009", "resolved": "#12b76a"}[self.value]


UNRESOLVED = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


class NotifyEvent(models.TextChoices):
    OPENED = "opened", "Opened"
    ESCALATED = "escalated", "Escalated"
    REMINDER = "reminder", "Still open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    TEST = "test", "Test"


class Incident(models.Model):
    """One stretch of time a rule fired on a pipeline: opened, maybe acknowledged, resolved.

    At most one unresolved incident per pipeline and rule (partial unique index): while the rule
    keeps firing, evaluations update this row instead of opening another.
    """

    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.CASCADE, related_name="incidents")
    rule = models.CharField(max_length=16, choices=RuleKind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN, db_index=True)
    summary = models.CharField(max_length=500, help_text="What fired, in one sentence (the latest evaluation).")
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    opened_at = models.DateTimeField(default=clock.now)
    last_seen_at = models.DateTimeField(default=clock.now, help_text="The last evaluation that found the rule firing.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, help_text="Empty: resolved automatically.")
    last_notified_at = models.DateTimeField(null=True, blank=True)
    notifications = models.PositiveIntegerField(default=0, help_text="Notification rounds so far.")
    peak_severity = models.CharField(max_length=16, choices=Severity.choices, blank=True)
    # A silence or maintenance window holds notifications: the event to send when it ends (opened beats
    # escalated beats a reminder) and when holding began. Empty: nothing held.
    held_event = models.CharField(
        "held notification",
        max_length=16,
        choices=NotifyEvent.choices,
        blank=True,
        help_text="Sent when the silence ends.",
    )
    held_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        indexes = [models.Index(fields=["pipeline", "status"]), models.Index(fields=["status", "opened_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "rule"],
                condition=models.Q(status__in=UNRESOLVED),
                name="uniq_unresolved_incident_per_rule",
                violation_error_message="This rule already has an unresolved incident.",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.pipeline} · {self.get_rule_display()}"

    @property
    def severity_choice(self) -> Severity:
        return Severity(self.severity)

    @property
    def status_choice(self) -> IncidentStatus:
        return IncidentStatus(self.status)

    @property
    def is_unresolved(self) -> bool:
        return self.status in UNRESOLVED

    @property
    def duration(self) -> timedelta:
        return (self.resolved_at or clock.now()) - self.opened_at

    def acknowledge(self, by: str, at=None) -> bool:
        """Open → acknowledged (stops re-notification). Compare-and-set: False if it was not open."""
        at = at or clock.now()
        if (
            Incident.objects.filter(pk=self.pk, status=IncidentStatus.OPEN).update(
                status=IncidentStatus.ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=by
            )
            != 1
        ):
            return False
        self.status, self.acknowledged_at, self.acknowledged_by = IncidentStatus.ACKNOWLEDGED, at, by
        return True

    def resolve(self, by: str = "", at=None) -> bool:
        """Open or acknowledged → resolved. Compare-and-set: False if it was already resolved."""
        at = at or clock.now()
        if (
            Incident.objects.filter(pk=self.pk, status__in=UNRESOLVED).update(
                status=IncidentStatus.RESOLVED, resolved_at=at, resolved_by=by
            )
            != 1
        ):
            return False
        self.status, self.resolved_at, self.resolved_by = IncidentStatus.RESOLVED, at, by
        return True


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "JSON webhook"
    SLACK = "slack", "Slack incoming webhook"
    PAGERDUTY = "pagerduty", "PagerDuty (Events API v2)"
    OPSGENIE = "opsgenie", "Opsgenie"
    TEAMS = "teams", "Microsoft Teams (Workflows webhook)"


def new_signing_secret() -> str:
    return secrets.token_urlsafe(32)


class NotificationChannel(models.Model):
    """Where incident notifications go: email, a JSON webhook, Slack, Teams, PagerDuty or Opsgenie."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.TextField(
        help_text="Email: addresses, one per line or comma-separated. Webhooks (JSON, Slack, Teams): the URL. "
        "PagerDuty: the integration's routing key (32 characters). Opsgenie: the API integration's key, "
        "prefixed eu: for the EU instance (eu:KEY)."
    )
    signing_secret = models.CharField(
        "secret",
        max_length=200,
        blank=True,
        help_text="JSON webhook: the key opsboard signs each POST with (X-Opsboard-Signature); leave it empty "
        "to have a new one generated. PagerDuty: the secret of the v3 webhook subscription that tells "
        "opsboard about acknowledgements (empty: none accepted). Other kinds: unused.",
    )
    enabled = models.BooleanField(default=True)
    min_severity = models.CharField(
        "minimum severity",
        max_length=16,
        choices=[(s.value, s.label) for s in (Severity.WARNING, Severity.CRITICAL)],
        default=Severity.WARNING,
        help_text="Incidents below this are not sent here.",
    )
    pipelines = models.ManyToManyField(
        "pipelines.Pipeline",
        blank=True,
        related_name="channels",
        help_text="Empty: every pipeline. Otherwise only incidents of these pipelines are sent here.",
    )
    # Selectors read by alerting.deliveries with registry.tags (the one parser): all that are set must match.
    groups = models.CharField(
        max_length=500,
        blank=True,
        help_text="Only incidents of pipelines in one of these groups, comma-separated. Empty: every group.",
    )
    tag = models.CharField(
        max_length=400,
        blank=True,
        help_text="Only incidents of pipelines carrying this tag: key (any value) or key=value. Empty: any.",
    )
    teams = models.ManyToManyField(
        "pipelines.Team",
        blank=True,
        related_name="channels",
        help_text="Only incidents of pipelines one of these teams owns. Empty: any team's.",
    )
    send_resolved = models.BooleanField("notify on resolve", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # A JSON webhook always signs: a new channel, or one whose secret was cleared, gets a fresh key.
        if self.kind == ChannelKind.WEBHOOK and not self.signing_secret:
            self.signing_secret = new_signing_secret()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "signing_secret"}
        super().save(*args, **kwargs)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"

    @property
    def colour(self) -> str:
        return {"pending": "#98a2b3", "sending": "#2e90fa", "sent": "#12b76a", "failed": "#d92d20"}[self.value]


class Delivery(models.Model):
    """One notification to one channel, with every attempt and its result; retried with backoff."""

    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=16, choices=NotifyEvent.choices)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    payload = models.JSONField(default=dict, help_text="What is sent (rendered when the delivery is created).")
    created_at = models.DateTimeField(default=clock.now)
    next_attempt_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.JSONField(default=list, blank=True, help_text="[{at, ok, status, error, ms}] per attempt.")
    attempt_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.channel}"
