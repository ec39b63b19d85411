"""opsboard's data: AWS accounts, the pipelines registered on them, the metric history, cycle records.

Status and lifecycle logic lives here as model methods. `now()` is module-level so tests can
freeze time by patching `pipelines.models.now`.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from .aws import Target
from .trends import human_seconds


def now():
    return timezone.now()


#: Health thresholds (documented in the README): message loss within these is critical / a warning.
LOSS_CRITICAL_SECONDS = 6 * 3600
LOSS_WARNING_SECONDS = 24 * 3600
FORECAST_MINUTES = 30  # a backlog on course to cross its threshold within this is a warning
ERROR_RATE_WARNING = 0.05


REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")


def validate_region(value: str) -> None:
    if not REGION_RE.match(value or ""):
        raise ValidationError(f"{value!r} is not an AWS region name (for example eu-west-1).")


class Health(models.TextChoices):
    """A pipeline's health, worst first by `rank`; each value has a display colour."""

    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    STALE = "stale", "Stale"
    OK = "ok", "OK"
    PENDING = "pending", "Not synced yet"
    DISABLED = "disabled", "Disabled"

    @property
    def colour(self) -> str:
        return {
            "critical": "#d92d20",
            "warning": "#f79009",
            "stale": "#7a5af8",
            "ok": "#12b76a",
            "pending": "#98a2b3",
            "disabled": "#667085",
        }[self.value]

    @property
    def rank(self) -> int:
        return ["critical", "warning", "stale", "ok", "pending", "disabled"].index(self.value)


class ApiKind(models.TextChoices):
    REST = "rest", "REST API (API Gateway v1)"
    HTTP = "http", "HTTP API (API Gateway v2)"


class AwsAccount(models.Model):
    """One AWS account in one region, reached through boto3's credential chain.

    No secret keys are stored: the process's own credentials are used, optionally to assume a role
    in this account (cross-account access), and an endpoint URL can point at an emulator.
    """

    name = models.CharField(max_length=100, unique=True)
    region = models.CharField(max_length=32, validators=[validate_region], help_text="For example eu-west-1.")
    role_arn = models.CharField(
        "role ARN",
        max_length=2048,
        blank=True,
        validators=[
            RegexValidator(
                r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
                "Enter an IAM role ARN such as arn:aws:iam::123456789012:role/opsboard.",
            )
        ],
        help_text="Optional. A role opsboard assumes with STS (cross-account access).",
    )
    external_id = models.CharField(
        "external ID",
        max_length=1224,
        blank=True,
        help_text="Optional. Sent with AssumeRole when the role requires it.",
    )
    endpoint_url = models.URLField(
        "endpoint URL", blank=True, help_text="Optional. An AWS-compatible endpoint (an emulator, LocalStack)."
    )
    unsupported_statistics = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="CloudWatch statistics this endpoint rejected; left out of later requests.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "AWS account"

    def __str__(self) -> str:
        return f"{self.name} ({self.region})"

    def target(self) -> Target:
        return Target(
            region=self.region, role_arn=self.role_arn, external_id=self.external_id, endpoint_url=self.endpoint_url
        )


class Pipeline(models.Model):
    """One API → SQS → Lambda pipeline, identified by its queue.

    The operator gives the queue URL (and optionally the API and log groups); everything else in the
    "discovered" group is read from AWS by `discovery.discover` and stored with `apply_discovery`.
    """

    name = models.CharField(max_length=100, unique=True)
    account = models.ForeignKey(AwsAccount, on_delete=models.PROTECT, related_name="pipelines")
    queue_url = models.CharField("queue URL", max_length=1024)
    api_kind = models.CharField("API kind", max_length=8, choices=ApiKind.choices, blank=True)
    api_id = models.CharField("API id", max_length=64, blank=True)
    api_stage = models.CharField("API stage", max_length=128, blank=True)
    api_name = models.CharField(
        "API name",
        max_length=1024,
        blank=True,
        editable=False,
        help_text="Discovered; REST API metrics are published under the API's name.",
    )
    api_passes_request_id = models.BooleanField(
        "API passes the request id",
        null=True,
        blank=True,
        editable=False,
        help_text="Discovered from the API's SQS integration: does it put $context.requestId into the "
        "request-id attribute? Request traces need it. Empty: no SQS integration was found.",
    )
    api_log_group = models.CharField("API access log group", max_length=512, blank=True)
    consumer_log_group = models.CharField(
        "consumer log group",
        max_length=512,
        blank=True,
        help_text="Defaults to /aws/lambda/<function> when a consumer is discovered.",
    )
    request_id_attribute = models.CharField(
        "request-id message attribute",
        max_length=256,
        default="requestId",
        help_text="The SQS message attribute that carries the API request id.",
    )
    poll_interval = models.PositiveIntegerField(
        "poll interval (s)",
        default=60,
        validators=[MinValueValidator(60), MaxValueValidator(86400)],
        help_text="How often the live backlog is read. Longer intervals cost less.",
    )
    backlog_threshold = models.PositiveIntegerField(default=1000, help_text="Visible messages before a warning.")
    oldest_age_sla = models.PositiveIntegerField(
        "oldest-message SLA (s)", default=900, help_text="Oldest message age before a warning."
    )
    dlq_threshold = models.PositiveIntegerField("DLQ depth threshold", default=1)
    enabled = models.BooleanField(default=True)

    # Discovered from AWS (read-only in the admin).
    queue_arn = models.CharField("queue ARN", max_length=1024, blank=True)
    queue_name = models.CharField(max_length=80, blank=True)
    is_fifo = models.BooleanField("FIFO", default=False)
    visibility_timeout = models.PositiveIntegerField("visibility timeout (s)", null=True, blank=True)
    retention_period = models.PositiveIntegerField("retention period (s)", null=True, blank=True)
    dlq_url = models.CharField("DLQ URL", max_length=1024, blank=True)
    dlq_arn = models.CharField("DLQ ARN", max_length=1024, blank=True)
    max_receive_count = models.PositiveIntegerField(null=True, blank=True)
    dlq_retention_period = models.PositiveIntegerField("DLQ retention period (s)", null=True, blank=True)
    function_name = models.CharField(max_length=170, blank=True)
    function_arn = models.CharField("function ARN", max_length=1024, blank=True)
    function_timeout = models.PositiveIntegerField("function timeout (s)", null=True, blank=True)
    reserved_concurrency = models.PositiveIntegerField(null=True, blank=True)
    batch_size = models.PositiveIntegerField(null=True, blank=True)
    maximum_concurrency = models.PositiveIntegerField("MaximumConcurrency", null=True, blank=True)
    report_batch_item_failures = models.BooleanField("ReportBatchItemFailures", null=True, blank=True)
    mapping_uuid = models.CharField("event-source mapping", max_length=64, blank=True)
    mapping_state = models.CharField(max_length=32, blank=True)
    extra_mappings = models.PositiveIntegerField(
        default=0, help_text="Further event-source mappings on the queue besides the one shown."
    )
    discovered_at = models.DateTimeField(null=True, blank=True)

    # Sync state.
    last_sync_at = models.DateTimeField("last sync", null=True, blank=True)
    metrics_synced_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="The last failure reading the queues.")
    metrics_error = models.TextField(blank=True, help_text="The last failure fetching CloudWatch metrics.")
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)

    # Latest live values, kept on the row so list pages need no per-pipeline queries.
    backlog = models.PositiveIntegerField(null=True, blank=True)
    in_flight = models.PositiveIntegerField(null=True, blank=True)
    delayed = models.PositiveIntegerField(null=True, blank=True)
    dlq_depth = models.PositiveIntegerField("DLQ depth", null=True, blank=True)
    oldest_age = models.PositiveIntegerField("oldest message age (s)", null=True, blank=True)

    # Health and trend as of the last sync (health.refresh), so the overview reads one table.
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.PENDING, db_index=True)
    health_reasons = models.JSONField(default=list, blank=True, help_text="[severity, reason] pairs.")
    drain_rate = models.FloatField("backlog trend (msg/min)", null=True, blank=True)
    time_to_loss = models.FloatField("time to loss (s)", null=True, blank=True)
    forecast_minutes = models.FloatField(null=True, blank=True)
    recent_errors = models.PositiveIntegerField(default=0)
    recent_throttles = models.PositiveIntegerField(default=0)
    recent_invocations = models.PositiveIntegerField(default=0)
    sparkline = models.JSONField(default=list, blank=True, help_text="Hourly backlog peaks, last 24 hours.")

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("redrive_dlq", "Can redrive a dead-letter queue"),
            ("view_message_bodies", "Can view message bodies"),
            ("lookup_trace", "Can look up a request trace"),
        ]
        indexes = [models.Index(fields=["account", "enabled"])]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "queue_url"],
                name="uniq_pipeline_account_queue",
                violation_error_message="This queue is already registered on this account.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    # --- discovery -------------------------------------------------------------------------

    def apply_discovery(self, fields: dict) -> None:
        """Store what discovery found (a dict of this model's field names)."""
        for key, value in fields.items():
            setattr(self, key, value)
        if self.function_name and not self.consumer_log_group:
            self.consumer_log_group = f"/aws/lambda/{self.function_name}"
        self.discovered_at = now()

    @property
    def has_dlq(self) -> bool:
        return bool(self.dlq_url)

    @property
    def has_consumer(self) -> bool:
        return bool(self.function_name)

    @property
    def has_api(self) -> bool:
        return bool(self.api_id)

    # --- display ---------------------------------------------------------------------------

    @property
    def oldest_age_label(self) -> str:
        return human_seconds(self.oldest_age)

    @property
    def oldest_age_sla_label(self) -> str:
        return human_seconds(self.oldest_age_sla)

    @property
    def retention_label(self) -> str:
        return human_seconds(self.retention_period)

    @property
    def retention_used_pct(self) -> float:
        """How much of the retention period the oldest message has used, 0–100."""
        if not self.retention_period or self.oldest_age is None:
            return 0.0
        return round(min(100.0, 100.0 * self.oldest_age / self.retention_period), 1)

    # --- status ----------------------------------------------------------------------------

    def stale_after(self) -> timedelta:
        """Data older than three poll intervals is stale."""
        return timedelta(seconds=3 * max(self.poll_interval, settings.FAST_INTERVAL_SECONDS))

    def is_stale(self, at=None) -> bool:
        at = at or now()
        return self.last_sync_at is None or at - self.last_sync_at > self.stale_after()

    def is_due(self, at=None) -> bool:
        """True when the live backlog should be read again (allowing a few seconds of beat jitter)."""
        at = at or now()
        if self.last_sync_at is None:
            return True
        return at - self.last_sync_at >= timedelta(seconds=self.poll_interval - 5)

    def status_reasons(self, at=None, trend=None, stale: bool = True) -> list[tuple[Health, str]]:
        """Every condition that makes this pipeline less than OK, with its severity.

        `trend` (a health.Trend) adds what only history tells: time to message loss, a backlog
        forecast to cross its threshold, recent throttles and errors. `stale=False` leaves out
        staleness, which depends on the clock and is added when the status is read.
        """
        at = at or now()
        reasons: list[tuple[Health, str]] = []
        if stale and self.last_sync_at is not None and self.is_stale(at):
            age = int((at - self.last_sync_at).total_seconds() // 60)
            reasons.append((Health.STALE, f"no data for {age} min"))
        if self.backlog is not None and self.backlog > self.backlog_threshold:
            sev = Health.CRITICAL if self.backlog > 5 * self.backlog_threshold else Health.WARNING
            reasons.append((sev, f"backlog {self.backlog:,} above {self.backlog_threshold:,}"))
        ttl = trend.ttl if trend is not None else None
        if self.oldest_age is not None and self.retention_period and self.oldest_age >= 0.5 * self.retention_period:
            reasons.append((Health.CRITICAL, "oldest message past half of the retention period"))
        elif ttl is not None and ttl < LOSS_CRITICAL_SECONDS:
            reasons.append(
                (
                    Health.CRITICAL,
                    "messages expire now" if ttl == 0 else f"messages start expiring in ~{human_seconds(ttl)}",
                )
            )
        elif ttl is not None and ttl < LOSS_WARNING_SECONDS:
            reasons.append((Health.WARNING, f"messages start expiring in ~{human_seconds(ttl)}"))
        if self.oldest_age is not None and self.oldest_age > self.oldest_age_sla:
            reasons.append(
                (
                    Health.WARNING,
                    f"oldest message {human_seconds(self.oldest_age)} "
                    f"above the {human_seconds(self.oldest_age_sla)} SLA",
                )
            )
        if self.dlq_depth is not None and self.dlq_depth >= self.dlq_threshold and self.dlq_depth > 0:
            reasons.append((Health.WARNING, f"{self.dlq_depth:,} message(s) in the DLQ"))
        if trend is not None:
            if trend.forecast_minutes is not None and trend.forecast_minutes <= FORECAST_MINUTES:
                reasons.append(
                    (
                        Health.WARNING,
                        f"backlog on course to pass {self.backlog_threshold:,} in ~{trend.forecast_minutes:.0f} min",
                    )
                )
            if trend.throttles:
                reasons.append((Health.WARNING, f"{trend.throttles:,} Lambda throttle(s) recently"))
            if trend.error_rate is not None and trend.error_rate > ERROR_RATE_WARNING:
                reasons.append((Health.WARNING, f"Lambda errors at {trend.error_rate:.0%} of invocations"))
        return reasons

    def get_status(self, at=None, trend=None, stale: bool = True) -> Health:
        if not self.enabled:
            return Health.DISABLED
        if self.last_sync_at is None:
            return Health.PENDING
        reasons = self.status_reasons(at, trend, stale)
        if not reasons:
            return Health.OK
        return min((sev for sev, _ in reasons), key=lambda h: h.rank)

    def apply_trend(self, trend, at=None) -> None:
        """Store a freshly computed trend (a health.Trend) and the health it implies."""
        self.drain_rate, self.time_to_loss = trend.drain.rate, trend.ttl
        self.forecast_minutes = trend.forecast_minutes
        self.recent_errors, self.recent_throttles = trend.errors, trend.throttles
        self.recent_invocations = trend.invocations
        self.health = self.get_status(at, trend, stale=False)
        self.health_reasons = [[sev.value, why] for sev, why in self.status_reasons(at, trend, stale=False)]

    @property
    def trend(self):
        """The stored trend, as a health.Trend."""
        from .health import Trend
        from .trends import Drain

        return Trend(
            drain=Drain(self.backlog, self.drain_rate),
            ttl=self.time_to_loss,
            errors=self.recent_errors,
            throttles=self.recent_throttles,
            invocations=self.recent_invocations,
            forecast_minutes=self.forecast_minutes,
        )

    def current_health(self, at=None) -> tuple[Health, list[tuple[Health, str]]]:
        """The stored health and reasons, with staleness (which depends on the clock) added now."""
        if not self.enabled:
            return Health.DISABLED, []
        if self.last_sync_at is None:
            return Health.PENDING, []
        reasons = [(Health(sev), why) for sev, why in self.health_reasons]
        stored = Health(self.health) if self.health in Health.values else Health.OK
        if self.is_stale(at):
            age = int(((at or now()) - self.last_sync_at).total_seconds() // 60)
            reasons = [(Health.STALE, f"no data for {age} min"), *reasons]
            stored = min((stored, Health.STALE), key=lambda h: h.rank)
        return stored, reasons


class MetricFields(models.Model):
    """The measurements of one pipeline over one interval. Fields a pipeline lacks stay null."""

    # Live counts (fast cycle, GetQueueAttributes).
    visible = models.IntegerField(null=True)
    in_flight = models.IntegerField(null=True)
    delayed = models.IntegerField(null=True)
    dlq_visible = models.IntegerField(null=True)
    # AWS/SQS (metrics cycle, GetMetricData).
    oldest_age = models.IntegerField(null=True)
    dlq_oldest_age = models.IntegerField(null=True)
    sent = models.IntegerField(null=True)
    received = models.IntegerField(null=True)
    deleted = models.IntegerField(null=True)
    empty_receives = models.IntegerField(null=True)
    # AWS/Lambda.
    lambda_invocations = models.IntegerField(null=True)
    lambda_errors = models.IntegerField(null=True)
    lambda_throttles = models.IntegerField(null=True)
    lambda_duration_avg = models.FloatField(null=True)
    lambda_duration_p99 = models.FloatField(null=True)
    lambda_concurrency = models.IntegerField(null=True)
    # AWS/ApiGateway.
    api_count = models.IntegerField(null=True)
    api_4xx = models.IntegerField(null=True)
    api_5xx = models.IntegerField(null=True)
    api_latency_avg = models.FloatField(null=True)
    api_latency_p99 = models.FloatField(null=True)

    class Meta:
        abstract = True

    COUNT_FIELDS = ("visible", "in_flight", "delayed", "dlq_visible")


class MetricSample(MetricFields):
    """One row per pipeline per UTC minute. Re-syncing upserts; it never duplicates."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="samples")
    minute = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pipeline", "minute"], name="uniq_sample_pipeline_minute")]
        ordering = ["pipeline", "minute"]

    def __str__(self) -> str:
        return f"{self.pipeline_id}@{self.minute:%Y-%m-%d %H:%M}"


class MetricRollup(MetricFields):
    """One row per pipeline per UTC hour: averages for levels, sums for counts, maxima for ages."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField()
    samples = models.PositiveIntegerField(default=0)
    visible_max = models.IntegerField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pipeline", "hour"], name="uniq_rollup_pipeline_hour")]
        ordering = ["pipeline", "hour"]


class CycleKind(models.TextChoices):
    FAST = "fast", "Queue counts"
    METRICS = "metrics", "CloudWatch metrics"
    BACKFILL = "backfill", "Backfill"


class PollCycle(models.Model):
    """What one collection run did and what it cost: the poll-cost meter."""

    kind = models.CharField(max_length=16, choices=CycleKind.choices)
    account = models.ForeignKey(AwsAccount, null=True, on_delete=models.SET_NULL, related_name="cycles")
    started_at = models.DateTimeField(default=now)
    finished_at = models.DateTimeField(null=True)
    pipelines = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    samples_written = models.PositiveIntegerField(default=0)
    api_calls = models.PositiveIntegerField(default=0)
    calls = models.JSONField(default=dict, help_text="HTTP attempts per service:Operation.")
    metrics_requested = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["kind", "started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def duration(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    @property
    def cost(self) -> float:
        sqs_calls = sum(n for k, n in self.calls.items() if k.startswith("sqs:"))
        return (
            sqs_calls * settings.SQS_PRICE_PER_MILLION / 1e6
            + self.metrics_requested * settings.CLOUDWATCH_PRICE_PER_THOUSAND_METRICS / 1e3
        )


class Lock(models.Model):
    """A named lease, used for cycle locks when no Redis is configured."""

    name = models.CharField(max_length=200, primary_key=True)
    token = models.CharField(max_length=64)
    expires_at = models.DateTimeField()


# --- dead-letter queue operations --------------------------------------------------------------------


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
    created_at = models.DateTimeField(default=now)
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
        return "all messages"

    def expected_total(self) -> int | None:
        """How many messages the task expects to examine (None: unknown)."""
        if self.filter_kind == FilterKind.MESSAGE_IDS:
            return len(self.filter_ids())
        if self.dry_run:
            return min(self.max_messages or DRY_RUN_SAMPLE, DRY_RUN_SAMPLE, self.depth_at_start or DRY_RUN_SAMPLE)
        if self.engine == RedriveEngine.NATIVE:
            return self.matched or self.depth_at_start
        if self.max_messages and not self.filter_kind:
            return min(self.max_messages, self.depth_at_start or self.max_messages)
        return self.depth_at_start

    def percent(self) -> int:
        if self.status == RedriveStatus.COMPLETED:
            return 100
        total = self.expected_total()
        if not total:
            return 0
        if self.filter_kind == FilterKind.MESSAGE_IDS:
            done = self.matched  # of the chosen messages, found so far
        elif self.dry_run or (self.filter_kind and self.engine != RedriveEngine.NATIVE):
            done = self.examined
        else:
            done = self.moved + self.failed
        return max(0, min(99, int(100 * done / total)))

    def summary(self) -> str:
        """One sentence an operator reads first."""
        s = RedriveStatus(self.status)
        if self.operation == DlqOperation.PURGE:
            if s == RedriveStatus.COMPLETED:
                return f"Purged the DLQ ({self.matched} message(s) at the time)."
            return "Purging." if self.is_active else "The purge failed; nothing was deleted."
        verb = "deleted" if self.operation == DlqOperation.DELETE else "moved"
        if self.dry_run:
            if s == RedriveStatus.COMPLETED:
                return f"Dry run: {self.matched} of {self.examined} sampled message(s) would move; nothing was moved."
            return "Dry run: sampling messages." if self.is_active else "The dry run did not finish; nothing was moved."
        if s == RedriveStatus.PENDING:
            return "Waiting for a worker."
        parts = [f"{self.moved} message(s) {verb}"]
        if self.failed:
            parts.append(f"{self.failed} failed and stay in the DLQ")
        if self.skipped:
            parts.append(f"{self.skipped} did not match and stay in the DLQ")
        text = ", ".join(parts)
        if s == RedriveStatus.COMPLETED and self.filter_kind and self.matched == 0:
            return (
                f"The filter ({self.filter_description()}) matched none of the {self.examined} message(s) "
                "examined; nothing was moved."
            )
        if s == RedriveStatus.COMPLETED:
            return f"Done: {text}."
        if s == RedriveStatus.FAILED:
            return f"Failed: {text}. {self.errors[-1]['message'] if self.errors else ''}".strip()
        if s == RedriveStatus.CANCELLED:
            return f"Cancelled: {text}."
        return f"{s.label}: {text} so far."

    def add_error(self, message: str, limit: int = 100, **detail) -> None:
        """Record an error (the newest `limit` are kept; `error_count` counts them all)."""
        self.errors = [*self.errors, {"at": now().isoformat(timespec="seconds"), "message": message, **detail}][-limit:]
        self.error_count += 1

    def request_cancel(self, by: str = "") -> bool:
        """Cancel: a pending task stops at once, a running one at its next batch. Compare-and-set."""
        at = now()
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

    def progress(self) -> dict:
        """What the progress page polls."""
        s = RedriveStatus(self.status)
        return {
            "id": self.pk,
            "status": s.value,
            "status_label": s.label,
            "colour": s.colour,
            "active": self.is_active,
            "engine": self.get_engine_display(),
            "dry_run": self.dry_run,
            "matched": self.matched,
            "moved": self.moved,
            "failed": self.failed,
            "skipped": self.skipped,
            "examined": self.examined,
            "total": self.expected_total(),
            "percent": self.percent(),
            "summary": self.summary(),
            "error_count": self.error_count,
            "errors": [e.get("message", "") for e in self.errors[-5:]],
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


# --- per-request trace -----------------------------------------------------------------------------


class TraceVerdict(models.TextChoices):
    """What a trace lookup concluded about a request; each value has a display colour."""

    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed (retried)"
    DLQ = "dlq", "In the DLQ"
    QUEUED = "queued", "Still queued"
    REJECTED = "rejected", "Rejected by the API"
    NOT_FOUND = "not_found", "Not found"

    @property
    def colour(self) -> str:
        return {
            "processed": "#12b76a",
            "failed": "#f79009",
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
    created_at = models.DateTimeField(default=now)
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


# --- alerting (its own module; imported here so Django registers the models) ----------------------

from .alert_models import (  # noqa: E402,F401
    UNRESOLVED,
    AlertRule,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Incident,
    IncidentStatus,
    NotificationChannel,
    NotifyEvent,
    PollCounter,
    RuleKind,
    Severity,
)
