"""Hourly rollups and pruning, in bounded batches."""

from datetime import UTC, datetime, timedelta

from django.db import connection

from pipelines.collection import retention
from pipelines.models import AuditEntry, AwsAccount, MetricRollup, MetricSample, Pipeline

UTC = UTC


def make_pipeline():
    account = AwsAccount.objects.create(name="a", region="us-east-1")
    return Pipeline.objects.create(name="p", account=account, queue_url="http://h/123456789012/p")


def test_it_rolls_minutes_up_into_hours(db):
    p = make_pipeline()
    h = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    MetricSample.objects.bulk_create(
        [
            MetricSample(
                pipeline=p,
                minute=h + timedelta(minutes=m),
                visible=m,
                sent=2,
                oldest_age=m * 10,
                lambda_duration_avg=100.0,
            )
            for m in range(60)
        ]
        + [MetricSample(pipeline=p, minute=h + timedelta(hours=1, minutes=5), visible=1000)]
    )
    written = retention.rollup(at=h + timedelta(hours=1, minutes=30))
    assert written == 1  # the current hour is not complete yet
    r = MetricRollup.objects.get(pipeline=p, hour=h)
    assert r.samples == 60 and r.visible == round(sum(range(60)) / 60) and r.visible_max == 59
    assert r.sent == 120 and r.oldest_age == 590 and r.lambda_duration_avg == 100.0 and r.api_count is None
    # The next run re-rolls the last hour (late data) and adds the newly complete one.
    MetricSample.objects.filter(pipeline=p, minute=h).update(sent=12)
    retention.rollup(at=h + timedelta(hours=2, minutes=1))
    assert MetricRollup.objects.get(pipeline=p, hour=h).sent == 130
    assert MetricRollup.objects.get(pipeline=p, hour=h + timedelta(hours=1)).visible == 1000
    assert MetricRollup.objects.count() == 2


def test_an_hours_average_duration_is_the_invocations_average_not_the_minutes(db):
    # One busy minute of 10,000 fast calls, 59 quiet minutes of one slow call each: the hour's calls took
    # (10,000 × 100 + 59 × 10,000) / 10,059 ms on average, not the minutes' mean of about 9,800 ms.
    p = make_pipeline()
    h = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    rows = [MetricSample(pipeline=p, minute=h, lambda_invocations=10_000, lambda_duration_avg=100.0)]
    rows += [
        MetricSample(pipeline=p, minute=h + timedelta(minutes=m), lambda_invocations=1, lambda_duration_avg=10_000.0)
        for m in range(1, 60)
    ]
    rows.append(MetricSample(pipeline=p, minute=h + timedelta(minutes=30, seconds=1), visible=3))  # no Lambda reading
    MetricSample.objects.bulk_create(rows)
    retention.rollup_range(h, h + timedelta(hours=1))
    r = MetricRollup.objects.get(pipeline=p, hour=h)
    assert r.lambda_invocations == 10_059
    assert r.lambda_duration_avg == (10_000 * 100 + 59 * 10_000) / 10_059


def test_it_prunes_past_retention_in_batches(db, settings):
    settings.RAW_RETENTION_DAYS = 15
    settings.ROLLUP_RETENTION_DAYS = 455
    settings.AUDIT_KEEP_DAYS = 365
    p = make_pipeline()
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    MetricSample.objects.bulk_create(
        [MetricSample(pipeline=p, minute=at - timedelta(days=16, minutes=m)) for m in range(25)]
        + [MetricSample(pipeline=p, minute=at - timedelta(days=1))]
    )
    MetricRollup.objects.bulk_create(
        [
            MetricRollup(pipeline=p, hour=at - timedelta(days=456)),
            MetricRollup(pipeline=p, hour=at - timedelta(days=100)),
        ]
    )
    AuditEntry.objects.bulk_create([AuditEntry(action="dlq_peek", username="ops") for _ in range(3)])
    AuditEntry.objects.filter(pk__in=AuditEntry.objects.values("pk")[:2]).update(at=at - timedelta(days=366))
    assert retention.prune(at=at, batch=10) == {"samples": 25, "rollups": 1, "audit": 2}
    assert AuditEntry.objects.count() == 1
    assert MetricSample.objects.count() == 1 and MetricRollup.objects.count() == 1
    # A budget bounds one run; the next run finishes the job. On Postgres minute rows go a whole day
    # (partition) at a time, which costs the same for any number of rows: the budget bounds deletes only.
    MetricSample.objects.bulk_create(
        [MetricSample(pipeline=p, minute=at - timedelta(days=20, minutes=m)) for m in range(25)]
    )
    if connection.vendor == "postgresql":
        assert retention.prune(at=at, batch=10, budget=10)["samples"] == 25
    else:
        assert retention.prune(at=at, batch=10, budget=10)["samples"] == 10
        assert retention.prune(at=at, batch=10)["samples"] == 15
