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


def now():
    return timezone.now()


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
        validators=[RegexValidator(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
                                   "Enter an IAM role ARN such as arn:aws:iam::123456789012:role/opsboard.")],
        help_text="Optional. A role opsboard assumes with STS (cross-account access).",
    )
    external_id = models.CharField(
        "external ID", max_length=1224, blank=True, help_text="Optional. Sent with AssumeRole when the role requires it."
    )
    endpoint_url = models.URLField(
        "endpoint URL", blank=True, help_text="Optional. An AWS-compatible endpoint (an emulator, LocalStack)."
    )
    unsupported_statistics = models.JSONField(
        default=list, blank=True, editable=False,
        help_text="CloudWatch statistics this endpoint rejected; left out of later requests.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "AWS account"

    def __str__(self) -> str:
        return f"{self.name} ({self.region})"

    def target(self) -> Target:
        return Target(region=self.region, role_arn=self.role_arn, external_id=self.external_id,
                      endpoint_url=self.endpoint_url)


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
        "API name", max_length=1024, blank=True, editable=False,
        help_text="Discovered; REST API metrics are published under the API's name.",
    )
    api_log_group = models.CharField("API access log group", max_length=512, blank=True)
    consumer_log_group = models.CharField(
        "consumer log group", max_length=512, blank=True,
        help_text="Defaults to /aws/lambda/<function> when a consumer is discovered.",
    )
    request_id_attribute = models.CharField(
        "request-id message attribute", max_length=256, default="requestId",
        help_text="The SQS message attribute that carries the API request id.",
    )
    poll_interval = models.PositiveIntegerField(
        "poll interval (s)", default=60, validators=[MinValueValidator(60), MaxValueValidator(86400)],
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
            models.UniqueConstraint(fields=["account", "queue_url"], name="uniq_pipeline_account_queue",
                                    violation_error_message="This queue is already registered on this account."),
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

    def status_reasons(self, at=None) -> list[tuple[Health, str]]:
        """Every condition that makes this pipeline less than OK, with its severity."""
        at = at or now()
        reasons: list[tuple[Health, str]] = []
        if self.last_sync_at is not None and self.is_stale(at):
            age = int((at - self.last_sync_at).total_seconds() // 60)
            reasons.append((Health.STALE, f"no data for {age} min"))
        if self.backlog is not None and self.backlog > self.backlog_threshold:
            sev = Health.CRITICAL if self.backlog > 5 * self.backlog_threshold else Health.WARNING
            reasons.append((sev, f"backlog {self.backlog} above {self.backlog_threshold}"))
        if self.oldest_age is not None:
            if self.retention_period and self.oldest_age >= 0.5 * self.retention_period:
                reasons.append((Health.CRITICAL, "oldest message past half of the retention period"))
            elif self.oldest_age > self.oldest_age_sla:
                reasons.append((Health.WARNING, f"oldest message {self.oldest_age}s above the {self.oldest_age_sla}s SLA"))
        if self.dlq_depth is not None and self.dlq_depth >= self.dlq_threshold and self.dlq_depth > 0:
            reasons.append((Health.WARNING, f"{self.dlq_depth} message(s) in the DLQ"))
        return reasons

    def get_status(self, at=None) -> Health:
        if not self.enabled:
            return Health.DISABLED
        if self.last_sync_at is None:
            return Health.PENDING
        reasons = self.status_reasons(at)
        if not reasons:
            return Health.OK
        return min((sev for sev, _ in reasons), key=lambda h: h.rank)

    # --- sync bookkeeping ------------------------------------------------------------------

    def record_failure(self, message: str, at=None) -> None:
        at = at or now()
        Pipeline.objects.filter(pk=self.pk).update(
            last_error=message, last_error_at=at, consecutive_failures=models.F("consecutive_failures") + 1
        )


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
        return (sqs_calls * settings.SQS_PRICE_PER_MILLION / 1e6
                + self.metrics_requested * settings.CLOUDWATCH_PRICE_PER_THOUSAND_METRICS / 1e3)


class Lock(models.Model):
    """A named lease, used for cycle locks when no Redis is configured."""

    name = models.CharField(max_length=200, primary_key=True)
    token = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
