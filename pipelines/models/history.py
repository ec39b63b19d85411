"""The metric history (minute samples, hourly rollups), what each collection cycle did and cost, and leases."""

from __future__ import annotations

from django.conf import settings
from django.db import models, router

from pipelines import clock
from pipelines.models import partitioning
from pipelines.models.registry import AwsAccount, Pipeline


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


class SampleQuerySet(models.QuerySet):
    """Inserts make sure the days they write have a partition (Postgres; see models/partitioning.py)."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        table = self.model._meta.db_table
        write = super().bulk_create
        moments = [o.minute for o in objs]
        return partitioning.guarded_write(table, self.db, moments, lambda: write(objs, *args, **kwargs))


class MetricSample(MetricFields):
    """One row per pipeline per UTC minute. Re-syncing upserts; it never duplicates.

    On Postgres the table is partitioned by day on `minute` (migration 0020): the database's primary
    key is (id, minute), while Django keeps `id` as the pk and reads, updates and deletes by it.
    """

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="samples")
    minute = models.DateTimeField()

    objects = SampleQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pipeline", "minute"], name="uniq_sample_pipeline_minute")]
        ordering = ["pipeline", "minute"]

    def __str__(self) -> str:
        return f"{self.pipeline_id}@{self.minute:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        table = self._meta.db_table
        write = super().save
        return partitioning.guarded_write(table, using, [self.minute], lambda: write(*args, **kwargs))


class MetricRollup(MetricFields):
    """One row per pipeline per UTC hour: averages for levels, sums for counts, maxima for ages."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField()
    samples = models.PositiveIntegerField(default=0)
    visible_max = models.IntegerField(null=True)
    # What the SLOs read (pipelines/slo/); null on hours rolled up before they existed: unknown, not good.
    age_minutes = models.PositiveSmallIntegerField(null=True, help_text="Minutes with an oldest-message age.")
    late_minutes = models.PositiveSmallIntegerField(null=True, help_text="Minutes whose oldest age reached the SLA.")
    dlq_minutes = models.PositiveSmallIntegerField(null=True, help_text="Minutes with a DLQ count.")
    dlq_arrivals = models.IntegerField(null=True, help_text="Increases of the DLQ's visible count, summed.")
    api_minutes = models.PositiveSmallIntegerField(null=True, help_text="Minutes with an API request and 5xx count.")
    api_requests = models.IntegerField(null=True, help_text="API requests in those minutes.")
    api_5xx_requests = models.IntegerField(null=True, help_text="API requests in those minutes that answered 5xx.")
    api_latency_minutes = models.PositiveSmallIntegerField(null=True, help_text="Minutes with an API p99 latency.")
    api_slow_minutes = models.PositiveSmallIntegerField(
        null=True, help_text="Minutes whose API p99 latency reached the latency objective's threshold."
    )

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
    started_at = models.DateTimeField(default=clock.now)
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


class PollCounter(models.Model):
    """Running totals of what collection cost, per account and AWS operation (Prometheus counters)."""

    account = models.ForeignKey("pipelines.AwsAccount", null=True, on_delete=models.CASCADE, related_name="+")
    operation = models.CharField(max_length=100, help_text="service:Operation, or metrics_requested.")
    total = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "operation"], name="uniq_poll_counter")]

    def __str__(self) -> str:
        return f"{self.operation}={self.total}"


class Lock(models.Model):
    """A named lease, used for cycle locks when no Redis is configured."""

    name = models.CharField(max_length=200, primary_key=True)
    token = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
