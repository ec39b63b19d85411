"""The registry: AWS accounts and the pipelines registered on them, with their lifecycle.

Health is not judged here: the alert rule table judges, and its findings are stored on the
pipeline row (`health`, `health_reasons`) so list pages read one table.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from pipelines import clock
from pipelines.aws import Target
from pipelines.formatting import human_seconds
from pipelines.models.status import Health, Severity

REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")


def validate_region(value: str) -> None:
    if not REGION_RE.match(value or ""):
        raise ValidationError(f"{value!r} is not an AWS region name (for example eu-west-1).")


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
    """One API → SQS → Lambda pipeline, identified by its queue: its ARN, once discovered, is unique.

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
    # Service-level objectives over a rolling SLO_WINDOW_DAYS (pipelines/slo/). Empty: the settings' defaults.
    slo_freshness_target = models.FloatField(
        "freshness objective (%)",
        null=True,
        blank=True,
        validators=[MinValueValidator(50), MaxValueValidator(99.999)],
        help_text="Share of measured minutes in which the oldest message is younger than the SLA. "
        "Empty: SLO_FRESHNESS_TARGET.",
    )
    slo_dlq_max_percent = models.FloatField(
        "delivery objective: DLQ at most (%)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001), MaxValueValidator(50)],
        help_text="Share of the messages sent to the queue that may reach the DLQ. Empty: SLO_DLQ_MAX_PERCENT.",
    )
    slo_api_5xx_percent = models.FloatField(
        "API availability objective: 5xx at most (%)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001), MaxValueValidator(50)],
        help_text="Share of the API's requests that may answer 5xx (with a discovered API). Empty: SLO_API_5XX_PERCENT.",
    )
    slo_api_latency_ms = models.PositiveIntegerField(
        "API latency objective: p99 under (ms)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(60000)],
        help_text="A minute whose p99 latency reaches this is slow; the share of minutes that are not must meet "
        "the freshness objective (with a discovered API). Empty: SLO_API_LATENCY_MS.",
    )
    enabled = models.BooleanField(default=True)
    group = models.CharField(
        max_length=100,
        blank=True,
        db_index=True,
        help_text="The team or service the pipeline belongs to; a filter on the overview, incidents and /metrics.",
    )
    tags = models.JSONField(
        default=dict,
        blank=True,
        help_text='Free-form tags as {"key": "value"} (a tag without a value has ""); set here or imported from '
        "the queue's AWS tags.",
    )
    aws_tags = models.JSONField(
        "AWS tags",
        default=dict,
        blank=True,
        editable=False,
        help_text="The queue's tags as AWS last reported them (ListQueueTags at discovery): tags equal to these "
        "follow AWS on a refresh; tags set by hand win.",
    )

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
    function_memory_mb = models.PositiveIntegerField(
        "function memory (MB)", null=True, blank=True, help_text="Discovered; prices the consumer's duration."
    )
    function_architecture = models.CharField(
        "function architecture", max_length=16, blank=True, help_text="Discovered: x86_64 or arm64."
    )
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

    # Health (the rule findings) and trend as of the last sync, so the overview reads one table.
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.PENDING, db_index=True)
    health_reasons = models.JSONField(
        default=list, blank=True, help_text="The rule findings: [severity, summary, rule], worst first."
    )
    drain_rate = models.FloatField("backlog trend (msg/min)", null=True, blank=True)
    time_to_loss = models.FloatField("time to loss (s)", null=True, blank=True)
    time_to_loss_known = models.BooleanField(
        default=False,
        help_text="False: the retention period or the oldest message's age is not known, so neither a loss "
        "nor its absence can be projected.",
    )
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
            # A peek receives: it raises receive counts and hides the messages a while, so it is audited.
            ("peek_dlq", "Can peek at a dead-letter queue (receives its messages)"),
            ("view_message_bodies", "Can view message bodies"),
            ("lookup_trace", "Can look up a request trace"),
            ("delete_dlq_messages", "Can delete or purge dead-letter queue messages"),
        ]
        indexes = [models.Index(fields=["account", "enabled"])]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "queue_url"],
                name="uniq_pipeline_account_queue",
                violation_error_message="This queue is already registered on this account.",
            ),
            # A queue is its ARN, whatever URL named it and on whichever account: one pipeline each.
            models.UniqueConstraint(
                fields=["queue_arn"],
                condition=~models.Q(queue_arn=""),
                name="uniq_pipeline_queue_arn",
                violation_error_message="This queue is already registered.",
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
        self.discovered_at = clock.now()

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
        at = at or clock.now()
        return self.last_sync_at is None or at - self.last_sync_at > self.stale_after()

    def is_due(self, at=None) -> bool:
        """True when the live backlog should be read again (allowing a few seconds of beat jitter)."""
        at = at or clock.now()
        if self.last_sync_at is None:
            return True
        return at - self.last_sync_at >= timedelta(seconds=self.poll_interval - 5)

    def stale_reason(self, at) -> str:
        return f"no data for {int((at - self.last_sync_at).total_seconds() // 60)} min"

    def findings(self) -> list[tuple[Severity, str, str]]:
        """The rule table's findings as the last evaluation of each rule stored them, worst first:
        (severity, summary, rule). Rows stored before findings named their rule have rule ''."""
        out = []
        for item in self.health_reasons or []:
            if len(item) >= 2 and item[0] in Severity.values:
                out.append((Severity(item[0]), item[1], item[2] if len(item) > 2 else ""))
        return sorted(out, key=lambda f: f[0].rank)

    def finding_severity(self, rule: str) -> Severity | None:
        """The severity of the stored finding of one rule; None when that rule is not firing."""
        return next((sev for sev, _, r in self.findings() if r == rule), None)

    def store_findings(self, findings: list[tuple[str, str, str]]) -> None:
        """Keep the rule table's findings, (severity, summary, rule) each, and the health they make."""
        ordered = sorted(findings, key=lambda f: Severity(f[0]).rank)
        self.health_reasons = [[str(sev), summary, str(rule)] for sev, summary, rule in ordered]
        self.health = Health.worst(Health.of(sev) for sev, _, _ in ordered)

    def current_health(self, at=None) -> tuple[Health, list[tuple[Health, str]]]:
        """Health as of `at`: disabled first, then the stored findings, with staleness, which depends
        on the clock, added now; a pipeline never read and with no finding is not synced yet."""
        if not self.enabled:
            return Health.DISABLED, []
        reasons = [(Health.of(sev), why) for sev, why, _ in self.findings()]
        if self.last_sync_at is None:  # never read: pending, unless a rule found why (its syncs fail)
            return (Health.worst(h for h, _ in reasons), reasons) if reasons else (Health.PENDING, [])
        at = at or clock.now()
        if self.is_stale(at):
            reasons = [(Health.STALE, self.stale_reason(at)), *reasons]
        return Health.worst(h for h, _ in reasons), reasons
