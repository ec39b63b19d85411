"""Dashboard: trends on hand-made histories, health, downsampled series, bounded queries, access."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pipelines.alerting import evaluate, history, rules
from pipelines.clock import now
from pipelines.collection import retention
from pipelines.models import AwsAccount, Health, MetricRollup, MetricSample, Pipeline
from pipelines.ui import charts, overview

UTC = UTC
T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def minutes(values, end=T):
    """(time, value) points one minute apart, ending at `end`."""
    return [(end - timedelta(minutes=len(values) - 1 - i), v) for i, v in enumerate(values)]


# --- health with trends -------------------------------------------------------------------------


@pytest.fixture
def pipeline(db):
    account = AwsAccount.objects.create(name="acct", region="us-east-1")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        queue_name="orders",
        retention_period=4 * 3600,
        last_sync_at=T,
        backlog=100,
        in_flight=0,
        dlq_depth=0,
        oldest_age=600,
        oldest_age_sla=900,
        backlog_threshold=1000,
    )


def judge(pipes, at=T):
    """What the cycles do after storing minute rows: refresh the trend, then run every rule."""
    recent = history.refresh(pipes, at)
    for source in (rules.FAST, rules.METRICS):
        evaluate.evaluate(pipes, at, recent, source)
    for p in pipes:
        p.refresh_from_db()


def store(p, end=T, **series):
    """Minute rows ending at `end`, one list of values per field."""
    n = max(len(v) for v in series.values())
    MetricSample.objects.bulk_create(
        [
            MetricSample(pipeline=p, minute=end - timedelta(minutes=n - 1 - i), **{k: v[i] for k, v in series.items()})
            for i in range(n)
        ]
    )


def test_a_queue_on_course_to_lose_messages_is_critical(pipeline):
    # Oldest message at 1 h of a 4 h retention and ageing: loss in ~3 h.
    pipeline.oldest_age = 3600
    store(pipeline, oldest_age=[3600 - 60 * (9 - i) for i in range(10)], visible=[100] * 10)
    judge([pipeline])
    assert pipeline.time_to_loss == pytest.approx(3 * 3600, rel=0.01)
    health, reasons = pipeline.current_health(T)
    assert health == Health.CRITICAL
    assert any("start expiring in ~3.0 h" in why for _, why in reasons)


def test_a_backlog_forecast_to_cross_its_threshold_warns(pipeline):
    pipeline.backlog = 460
    store(pipeline, visible=[460 - 40 * (9 - i) for i in range(10)], oldest_age=[60] * 10)
    judge([pipeline])
    assert pipeline.forecast_minutes == pytest.approx((1000 - 460) / 40)
    assert pipeline.current_health(T)[0] == Health.WARNING


@pytest.mark.parametrize(
    ("errors", "throttles", "invocations", "health"),
    [(0, 0, 0, Health.OK), (0, 3, 0, Health.WARNING), (1, 0, 100, Health.OK), (10, 0, 100, Health.WARNING)],
)
def test_throttles_and_error_rates_warn(pipeline, errors, throttles, invocations, health):
    pipeline.function_name = "orders-consumer"
    store(
        pipeline,
        visible=[100] * 5,
        lambda_errors=[errors, 0, 0, 0, 0],
        lambda_throttles=[throttles, 0, 0, 0, 0],
        lambda_invocations=[invocations, 0, 0, 0, 0],
    )
    judge([pipeline])
    assert pipeline.current_health(T)[0] == health


# --- series ---------------------------------------------------------------------------------------


def test_series_downsample_to_a_few_hundred_points_with_gaps(pipeline, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    start = T - timedelta(hours=24)
    rows = [
        MetricSample(pipeline=pipeline, minute=start + timedelta(minutes=i), visible=i % 100, sent=6)
        for i in range(24 * 60)
        if not (600 <= i < 720)
    ]  # two hours missing
    MetricSample.objects.bulk_create(rows)
    data = charts.series(pipeline, start, T)
    assert data["source"] == "minute rows" and data["bucket_seconds"] == 300
    assert len(data["t"]) <= charts.MAX_POINTS + 1
    visible, sent = data["series"]["visible"], data["series"]["sent"]
    gap = visible[120:144]
    assert all(v is None for v in gap), "missing data is a gap, not a zero"
    assert max(v for v in visible if v is not None) == 99  # peaks survive downsampling
    assert {v for v in sent if v is not None} == {6.0}  # counts stay per minute
    assert data["series"]["api_count"] == [None] * len(data["t"])


def test_long_ranges_read_hourly_rollups(pipeline, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    start = T - timedelta(days=30)
    MetricRollup.objects.bulk_create(
        [
            MetricRollup(
                pipeline=pipeline, hour=start + timedelta(hours=h), visible=5, visible_max=50, sent=360, samples=60
            )
            for h in range(30 * 24)
        ]
    )
    data = charts.series(pipeline, start, T)
    assert data["source"] == "hourly rollups" and data["bucket_seconds"] == 3 * 3600
    assert len(data["t"]) <= charts.MAX_POINTS + 1
    assert {v for v in data["series"]["visible"] if v is not None} == {50}
    assert {v for v in data["series"]["sent"] if v is not None} == {6.0}


def test_ranges_parse_and_bad_ones_say_why():
    a, b, name = charts.parse_range("6h", None, None, T)
    assert (b - a, name) == (timedelta(hours=6), "6h")
    a, b, name = charts.parse_range("custom", "2026-11-20T08:00", "2026-11-21T08:00", T)
    assert (a.hour, (b - a).days, name) == (8, 1, "custom")
    for args, message in [
        (("2w", None, None), "Unknown range"),
        (("custom", "yesterday", None), "dates and times"),
        (("custom", "2026-11-21T08:00", "2026-11-20T08:00"), "start before it ends"),
    ]:
        with pytest.raises(ValueError, match=message):
            charts.parse_range(*args, T)


# --- pages ----------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    return client


def many_pipelines(account, n, start=0):
    for i in range(start, start + n):
        p = Pipeline.objects.create(
            name=f"p{i:03d}",
            account=account,
            queue_url=f"http://h/123456789012/p{i}",
            queue_name=f"p{i}",
            last_sync_at=T,
            backlog=i,
            retention_period=345600,
        )
        MetricSample.objects.bulk_create(
            [MetricSample(pipeline=p, minute=T - timedelta(minutes=m), visible=i, oldest_age=10) for m in range(5)]
        )
        MetricRollup.objects.create(pipeline=p, hour=T.replace(minute=0) - timedelta(hours=1), visible_max=i)


def test_health_is_stored_after_a_sync_and_staleness_added_at_read_time(pipeline, monkeypatch):
    MetricSample.objects.bulk_create(
        [
            MetricSample(pipeline=pipeline, minute=m, visible=v, oldest_age=a)
            for (m, v), (_, a) in zip(minutes([100, 140, 180, 220]), minutes([3600, 3660, 3720, 3780]))
        ]
    )
    pipeline.backlog, pipeline.oldest_age = 220, 3780
    judge([pipeline])
    assert pipeline.drain_rate == pytest.approx(40) and history.stored_trend(pipeline).drain.label == "growing +40/min"
    assert pipeline.health == Health.CRITICAL and pipeline.time_to_loss == pytest.approx(4 * 3600 - 3780)
    assert pipeline.current_health(T)[0] == Health.CRITICAL
    later = T + timedelta(minutes=10)
    status, reasons = pipeline.current_health(later)
    assert status == Health.CRITICAL and reasons[0] == (Health.STALE, "no data for 10 min")
    pipeline.health, pipeline.health_reasons = Health.OK, []
    assert pipeline.current_health(later)[0] == Health.STALE


def test_sparklines_come_from_the_hourly_rollups(pipeline):
    hour = T.replace(minute=0) - timedelta(hours=3)
    MetricRollup.objects.create(pipeline=pipeline, hour=hour, visible_max=50)
    MetricRollup.objects.create(pipeline=pipeline, hour=hour + timedelta(hours=2), visible_max=70)
    assert retention.refresh_sparklines(T) == 1
    pipeline.refresh_from_db()
    assert len(pipeline.sparkline) == 24 and pipeline.sparkline[-3:] == [50, None, 70]
    svg = overview.sparkline_svg(pipeline.sparkline, 90, "#000")
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1  # the gap breaks the line
    assert retention.refresh_sparklines(T) == 0  # unchanged: nothing written


def test_the_overview_costs_the_same_queries_for_3_or_30_pipelines(staff_client, pipeline):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(reverse("admin:index")).status_code == 200
        return len(ctx.captured_queries)

    many_pipelines(pipeline.account, 2)
    few = count()
    many_pipelines(pipeline.account, 27, start=2)
    assert count() == few


def test_the_overview_lists_worst_first_and_filters(staff_client, pipeline):
    other = AwsAccount.objects.create(name="other", region="eu-west-1")
    flooded = Pipeline.objects.create(
        name="flooded",
        account=other,
        queue_url="http://h/123456789012/f",
        last_sync_at=now(),
        backlog=9000,
        backlog_threshold=1000,
    )
    pipeline.last_sync_at = now()
    at = now()
    store(flooded, end=at, visible=[9000] * 6)
    judge([flooded, pipeline], at)
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert page.index("flooded") < page.index(">orders<")
    assert "backlog 9,000 above 1,000" in page
    only = staff_client.get(reverse("admin:index"), {"health": "critical"}).content.decode()
    assert "flooded" in only and ">orders<" not in only
    rows = staff_client.get(reverse("admin:overview_rows"), {"account": other.pk}).content.decode()
    assert "flooded" in rows and ">orders<" not in rows and "<tr" in rows
    for odd in ("²", "99999999999999999999", "-1", "x"):  # not an account id: all accounts, no error
        res = staff_client.get(reverse("admin:overview_rows"), {"account": odd})
        assert res.status_code == 200 and "flooded" in res.content.decode()


def test_the_pipeline_page_and_its_json(staff_client, pipeline):
    MetricSample.objects.create(pipeline=pipeline, minute=T - timedelta(minutes=5), visible=7)
    page = staff_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk]))
    assert page.status_code == 200 and b"chart-backlog" in page.content and b"vendor/plotly.min.js" in page.content
    data = staff_client.get(reverse("admin:pipelines_pipeline_series", args=[pipeline.pk]), {"range": "30d"}).json()
    assert data["source"] == "hourly rollups"
    bad = staff_client.get(reverse("admin:pipelines_pipeline_series", args=[pipeline.pk]), {"range": "forever"})
    assert bad.status_code == 400 and "Unknown range" in bad.json()["error"]
    assert staff_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[99999])).status_code == 404


def test_plotly_is_served_from_the_installed_package(staff_client):
    from django.contrib.staticfiles import finders

    path = finders.find("vendor/plotly.min.js")
    assert path and path.endswith("plotly/package_data/plotly.min.js")


def test_anonymous_users_are_sent_to_login_everywhere(client, pipeline):
    urls = [
        reverse("admin:index"),
        reverse("admin:overview_rows"),
        reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk]),
        reverse("admin:pipelines_pipeline_series", args=[pipeline.pk]),
    ]
    for url in urls:
        res = client.get(url)
        assert res.status_code == 302 and reverse("admin:login") in res["Location"], url


def test_staff_without_the_view_permission_get_403(client, pipeline):
    user = User.objects.create_user("nobody", password="pw-for-tests-1", is_staff=True)
    client.force_login(user)
    landing = client.get(reverse("admin:index"))  # says no pipeline is shared with them, lists none
    assert landing.status_code == 200 and "ob-no-pipelines" in landing.content.decode()
    assert "orders" not in landing.content.decode()
    assert client.get(reverse("admin:pipelines_pipeline_series", args=[pipeline.pk])).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_pipeline"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(reverse("admin:index")).status_code == 200


def test_time_to_loss_is_unknown_not_safe_without_an_age(staff_client, pipeline):
    at = now()
    pipeline.last_sync_at, pipeline.backlog = at, 300
    store(pipeline, end=at, visible=[300] * 5)  # the queue holds messages; CloudWatch said nothing of their age
    judge([pipeline], at)
    assert pipeline.time_to_loss is None and not pipeline.time_to_loss_known
    row = staff_client.get(reverse("admin:overview_rows")).content.decode()
    assert ">unknown</span>" in row and "no loss in sight" not in row
    page = staff_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])).content.decode()
    assert "no recent age or retention" in page
    for i, age in enumerate([60, 30, 20, 10, 5]):  # the consumer reaches the oldest messages
        MetricSample.objects.filter(pipeline=pipeline, minute=at - timedelta(minutes=4 - i)).update(oldest_age=age)
    judge([pipeline], at)
    assert pipeline.time_to_loss_known
    assert "no loss in sight" in staff_client.get(reverse("admin:overview_rows")).content.decode()


def test_a_pipeline_without_dlq_or_consumer_shows_it_beside_its_health(staff_client, pipeline):
    pipeline.dlq_url, pipeline.function_name = "", ""
    pipeline.save()
    row = staff_client.get(reverse("admin:overview_rows")).content.decode()
    assert ">no DLQ</span>" in row and ">no consumer</span>" in row and 'class="ob-config"' in row
