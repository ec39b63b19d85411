"""Spend from the stored history: daily sums from hourly rollups (and today's minute rows), the
month-to-date estimate, and the spend anomaly insight week over week."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pipelines.models import AwsAccount, MetricRollup, MetricSample, Pipeline
from pipelines.registry.insights import InsightCode, insights_for
from pipelines.spend.history import spends, week_over_week
from pipelines.ui.spend import spend_for

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TODAY = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture
def pipeline(db):
    account = AwsAccount.objects.create(name="prod", region="us-east-1")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        queue_name="orders",
        discovered_at=AT,
        dlq_url="http://h/123456789012/orders-dlq",
        function_name="orders-consumer",
        function_memory_mb=1024,
        function_architecture="x86_64",
        batch_size=10,
        maximum_concurrency=5,
        report_batch_item_failures=True,
        mapping_uuid="m-1",
    )


def hours(p, days_ago: range, duration_ms: float, skip_days=()):
    """Hourly rollups: per hour 100 invocations of `duration_ms`, 1,000 messages sent, received, deleted."""
    rows = []
    for d in days_ago:
        if d in skip_days:
            continue
        for h in range(24):
            rows.append(
                MetricRollup(
                    pipeline=p,
                    hour=TODAY - timedelta(days=d) + timedelta(hours=h),
                    samples=60,
                    lambda_invocations=100,
                    lambda_duration_avg=duration_ms,
                    sent=1000,
                    received=1000,
                    deleted=1000,
                    empty_receives=0,
                )
            )
    MetricRollup.objects.bulk_create(rows)


def anomaly(p):
    return [i for i in insights_for(p, spends([p], AT)[p.pk]) if i.code == InsightCode.SPEND_ANOMALY]


# Per hour at 1,000 ms: 100 × $0.20/M = $0.00002; 100 × 1 s × 1 GB = 100 GB-s × $0.0000166667
# = $0.00166667; SQS 1,000 + 100 + 0 + 100 = 1,200 requests × $0.40/M = $0.00048. Total $0.00216667
# an hour for 1,000 messages: $0.00216667 per 1,000, $0.052 a day.


def test_it_sums_days_from_rollups_into_month_to_date_and_per_1000(pipeline):
    hours(pipeline, range(1, 15), 1000)  # Nov 14–27
    s = spends([pipeline], AT)[pipeline.pk]
    assert s.month_to_date.amount == pytest.approx(14 * 24 * 0.00216667)  # $0.728
    assert (s.month_days, s.month_days_with_data) == (28, 14)
    assert s.per_day.amount == pytest.approx(24 * 0.00216667)
    assert s.per_thousand.amount == pytest.approx(0.00216667)
    chart = s.chart()
    assert len(chart["days"]) == 30 and chart["days"][-1] == "2026-11-28"
    assert chart["series"]["lambda"][-1] is None  # today has no readings: a gap, not a zero
    assert chart["series"]["sqs"][-2] == pytest.approx(24 * 0.00048)


def test_todays_minute_rows_count_until_the_hour_is_rolled_up(pipeline):
    MetricSample.objects.bulk_create(
        MetricSample(
            pipeline=pipeline,
            minute=TODAY + timedelta(minutes=m),
            lambda_invocations=10,
            lambda_duration_avg=500,
            sent=10,
            received=10,
            deleted=10,
            empty_receives=1,
        )
        for m in range(60)
    )
    today = spends([pipeline], AT)[pipeline.pk].days[-1][1]
    # 600 invocations × $0.20/M + 600 × 0.5 s × 1 GB × $0.0000166667; SQS 600 + 60 + 60 + 60 = 780 requests
    assert today.parts["lambda"].amount == pytest.approx(0.00012 + 300 * 0.0000166667)
    assert today.parts["sqs"].amount == pytest.approx(780 * 0.4e-6)
    assert today.hours == 1


def test_the_anomaly_fires_above_twice_last_weeks_cost_per_1000(pipeline):
    hours(pipeline, range(8, 15), 1000)
    hours(pipeline, range(1, 8), 2500)  # $0.0005 + 250 GB-s × $0.0000166667 = $0.00466667: 2.15×
    assert week_over_week(spends([pipeline], AT)[pipeline.pk]) == pytest.approx((0.00216667, 0.00466667), rel=1e-5)
    (found,) = anomaly(pipeline)
    assert found.title == (
        "Cost per 1,000 messages up 2.2× week over week (was $0.0022, now $0.0047): check durations or retries"
    )


def test_the_anomaly_stays_quiet_at_1_9_times(pipeline):
    hours(pipeline, range(8, 15), 1000)
    hours(pipeline, range(1, 8), 2169)  # $0.0005 + 216.9 GB-s × $0.0000166667 = $0.00411500: 1.899×
    assert anomaly(pipeline) == []


def test_a_gappy_week_is_not_judged(pipeline):
    hours(pipeline, range(8, 15), 1000)
    hours(pipeline, range(1, 8), 5000, skip_days=(2, 3))  # 5 of 7 days with readings
    assert week_over_week(spends([pipeline], AT)[pipeline.pk]) is None
    assert anomaly(pipeline) == []


def test_an_unknown_memory_is_not_judged(pipeline):
    hours(pipeline, range(8, 15), 1000)
    hours(pipeline, range(1, 8), 5000)
    Pipeline.objects.filter(pk=pipeline.pk).update(function_memory_mb=None)
    assert anomaly(Pipeline.objects.select_related("account").get(pk=pipeline.pk)) == []


def test_spend_for_many_pipelines_takes_a_bounded_number_of_queries(pipeline):
    for n in range(10):
        p = Pipeline.objects.create(name=f"p{n}", account=pipeline.account, queue_url=f"http://h/123456789012/p{n}")
        hours(p, range(1, 3), 100)
    pipes = list(Pipeline.objects.select_related("account"))
    with CaptureQueriesContext(connection) as ctx:
        found = spend_for(pipes, AT)
    assert len(ctx.captured_queries) == 2  # one grouped query over the rollups, one over today's minutes
    assert len(found) == 11


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-123456789"))
    return client


def test_the_pipeline_page_shows_the_spend_card_and_the_overview_the_top_spenders(pipeline, admin_client, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: AT)
    hours(pipeline, range(1, 15), 1000)
    page = admin_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])).content.decode()
    assert 'id="ob-spend"' in page and 'id="chart-spend"' in page
    # month to date: 14 days × 24 h × $0.00216667 + opsboard's polling over those days
    assert "per 1,000 messages" in page and "14 of 28 days this month have readings" in page
    data = admin_client.get(reverse("admin:pipelines_pipeline_spend", args=[pipeline.pk])).json()
    assert data["series"]["lambda"][-2] == pytest.approx(24 * 0.00168667)
    overview = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="ob-spenders"' in overview  # filled after the page loads, from:
    spenders = admin_client.get(reverse("admin:overview_spenders")).content.decode()
    assert 'id="ob-top-spenders"' in spenders and "per 1,000 messages" in spenders


def test_a_pipeline_without_memory_shows_lambda_unknown_not_zero(pipeline, admin_client, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: AT)
    Pipeline.objects.filter(pk=pipeline.pk).update(function_memory_mb=None)
    hours(pipeline, range(1, 3), 1000)
    page = admin_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])).content.decode()
    assert "memory not discovered" in page and "≥ $" in page
