"""SLO arithmetic on hand-made histories with frozen time: compliance, budget, burn and coverage
from minute rows and hourly rollups, and the burn-rate pairs firing and resolving where documented."""

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.alerting import evaluate, rules
from pipelines.collection import retention
from pipelines.models import AwsAccount, Incident, MetricRollup, MetricSample, Pipeline, RuleKind, Severity
from pipelines.slo import burn, compute, windows

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # on the hour: minute rows cover 11:00–12:00
DAY = 24 * 60


@pytest.fixture
def pipeline(db, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    account = AwsAccount.objects.create(name="acct", region="us-east-1")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        dlq_url="http://h/123456789012/orders-dlq",
        retention_period=4 * 86400,
        last_sync_at=T,
        oldest_age_sla=900,
    )


def minutes(p, n, end=T, **series):
    """`n` minute rows ending at `end`; each series is a function of the index (0 = oldest), None skips."""
    MetricSample.objects.bulk_create(
        [
            MetricSample(pipeline=p, minute=end - timedelta(minutes=n - 1 - i), **{k: f(i) for k, f in series.items()})
            for i in range(n)
        ]
    )


def hours(p, n, late=lambda i: 0, skip=lambda i: False, **extra):
    """`n` rollup hours before the minute rows' span (i = 0 is the newest), `late(i)` late minutes each."""
    MetricRollup.objects.bulk_create(
        [
            MetricRollup(
                pipeline=p,
                hour=T - timedelta(hours=2 + i),
                samples=60,
                age_minutes=60,
                late_minutes=late(i),
                **extra,
            )
            for i in range(n)
            if not skip(i)
        ]
    )


def slo(p, at=T):
    counts = windows.load([p.pk], at).get(p.pk, {})
    return compute.objectives(p, counts.get(compute.window_minutes()), counts), counts


def test_it_is_unknown_with_less_than_a_day_of_data_never_perfect(pipeline):
    hours(pipeline, 12)
    (fresh, delivery, *_), _ = slo(pipeline)
    assert not fresh.known and fresh.compliance is None and fresh.budget_left_pct is None
    assert fresh.reason == "only 0.5 days measured (at least 1 needed)"
    assert not delivery.known and compute.worst_budget_left([fresh, delivery]) is None


def test_it_is_unknown_without_any_history(pipeline):
    (fresh, *_), counts = slo(pipeline)
    assert counts == {} and not fresh.known and fresh.coverage_days == 0


def test_a_draining_backlog_spends_budget_then_stops_burning(pipeline):
    # Two days measured; a backlog kept the oldest message past the SLA for 3 hours yesterday.
    hours(pipeline, 47, late=lambda i: 60 if 20 <= i < 23 else 0)
    minutes(pipeline, 60, oldest_age=lambda i: 30)
    (fresh, *_), counts = slo(pipeline)
    measured = 47 * 60 + 60
    assert fresh.known and fresh.sli.measured_minutes == measured
    assert fresh.compliance == pytest.approx(100 * (1 - 180 / measured))
    assert fresh.budget_total == pytest.approx(0.005 * measured)
    assert fresh.budget_left == pytest.approx(0.005 * measured - 180)  # overspent: negative
    assert fresh.budget_left_pct < 0
    assert fresh.burns[60] == 0 and fresh.burns[5] == 0  # drained: burning nothing now
    assert fresh.burns[3 * DAY] == pytest.approx((180 / (47 * 60 + 60)) / 0.005)


def test_a_growing_age_is_late_from_the_minute_it_reaches_the_sla(pipeline):
    hours(pipeline, 30)
    minutes(pipeline, 60, oldest_age=lambda i: 30 * i)  # reaches 900 s at i = 30
    (fresh, *_), _ = slo(pipeline)
    assert fresh.burns[60] == pytest.approx((30 / 60) / 0.005)
    assert fresh.burns[5] == pytest.approx(1 / 0.005)
    assert fresh.sli.bad == 30


def test_a_gap_is_unknown_not_good_and_coverage_says_so(pipeline):
    # 10 days of hours with 5 days missing and one day rolled up before the SLO columns existed.
    hours(pipeline, 10 * 24, late=lambda i: 6, skip=lambda i: 24 <= i < 6 * 24)
    MetricRollup.objects.create(pipeline=pipeline, hour=T - timedelta(days=12), samples=60, oldest_age=5000)
    (fresh, *_), _ = slo(pipeline)
    assert fresh.coverage_days == pytest.approx(5.0)
    assert fresh.compliance == pytest.approx(90.0)  # over the measured minutes only
    assert fresh.budget_left_pct == pytest.approx(100 * (1 - 0.1 / 0.005))


def test_spiky_dlq_arrivals_count_increases_only_across_missing_readings(pipeline):
    depths = [0, 0, 5, 5, 3, None, 8, 8, 2, 2]  # +5, a redrive, +5 across a minute without a count, a redrive
    minutes(pipeline, 10, dlq_visible=lambda i: depths[i], sent=lambda i: 100)
    hours(pipeline, 30, dlq_minutes=60, dlq_arrivals=0, sent=6000)
    (_, delivery, *_), counts = slo(pipeline)
    assert counts[60].dlq_arrivals == 10 and counts[60].sent == 1000
    assert delivery.burns[60] is None  # 9 measured minutes of 60: too few to judge
    assert delivery.burns[5] == pytest.approx((5 / 500) / 0.01)
    assert delivery.known and delivery.sli.bad == 10 and delivery.budget_total == pytest.approx(0.01 * 181_000)


def test_hours_rolled_up_before_arrivals_were_counted_do_not_dilute_delivery(pipeline):
    # 26 hours counted (1.04 % of sends reach the DLQ, over the 1 % objective) after 27 days of hours
    # rolled up before arrivals were counted: those days' sends say nothing and must not count as good.
    hours(pipeline, 26, dlq_minutes=60, dlq_arrivals=52, sent=5000)
    MetricRollup.objects.bulk_create(
        [MetricRollup(pipeline=pipeline, hour=T - timedelta(hours=28 + i), samples=60, sent=5000) for i in range(600)]
    )
    (_, delivery, *_), _ = slo(pipeline)
    assert delivery.sli.total == 26 * 5000 and delivery.sli.bad == 26 * 52
    assert delivery.budget_left_pct < 0  # overspent, not "96 % left"
    chart = dict(windows.hourly(pipeline, T))
    assert chart[T - timedelta(hours=28)].sent == 0 and chart[T - timedelta(hours=2)].sent == 5000


def test_without_a_dlq_the_delivery_objective_is_not_measured(pipeline):
    pipeline.dlq_url = ""
    hours(pipeline, 48)
    (_, delivery, *_), _ = slo(pipeline)
    assert not delivery.known and delivery.reason == "no DLQ: arrivals cannot be seen"


def test_overrides_replace_the_default_objectives(pipeline):
    pipeline.slo_freshness_target, pipeline.slo_dlq_max_percent = 99.0, 0.1
    hours(pipeline, 48, late=lambda i: 6 if i == 0 else 0)
    (fresh, delivery, *_), _ = slo(pipeline)
    assert fresh.target == 99.0 and fresh.budget_total == pytest.approx(0.01 * 48 * 60)
    assert delivery.target == pytest.approx(99.9) and "0.1 %" in delivery.label


def test_the_rollup_keeps_what_the_slos_read(pipeline):
    start = T - timedelta(hours=3)
    depths = [1] * 10 + [4] * 50 + [6] * 60  # 1 → 4 in the first hour; 4 → 6 across the hour boundary
    minutes(
        pipeline,
        120,
        end=start + timedelta(minutes=119),
        oldest_age=lambda i: 1000 if i < 7 else (None if i < 10 else 60),
        dlq_visible=lambda i: depths[i] if i != 60 else None,
    )
    retention.rollup_range(start, start + timedelta(hours=2))
    first, second = MetricRollup.objects.order_by("hour")
    assert (first.age_minutes, first.late_minutes, first.dlq_minutes, first.dlq_arrivals) == (57, 7, 60, 3)
    assert (second.age_minutes, second.late_minutes, second.dlq_minutes, second.dlq_arrivals) == (60, 0, 59, 2)


def late_streak(p, first_late: datetime, last_late: datetime | None, until: datetime):
    """Good minutes from a day before T, late from `first_late` to `last_late` (inclusive), to `until`."""
    hours(p, 22)
    t = T - timedelta(hours=2)
    rows = []
    while t <= until:
        late = first_late <= t and (last_late is None or t <= last_late)
        rows.append(MetricSample(pipeline=p, minute=t, oldest_age=1200 if late else 60))
        t += timedelta(minutes=1)
    MetricSample.objects.bulk_create(rows)


def fires(p, at, kind=RuleKind.SLO_FAST):
    pair = burn.PAIRS[kind]
    return burn.check(p, windows.load([p.pk], at).get(p.pk), pair, pair.factor)


def test_the_fast_pair_fires_at_the_fifth_late_minute_of_the_hour(pipeline):
    # 14.4× a 0.5 % allowance is 7.2 % of the hour: 4 late minutes of 60 burn 13.3×, 5 burn 16.7×.
    start = T - timedelta(minutes=30)
    late_streak(pipeline, start, None, T)
    assert fires(pipeline, start + timedelta(minutes=3)) is None
    found = fires(pipeline, start + timedelta(minutes=4))
    assert found.severity == Severity.CRITICAL and found.summary.startswith("freshness budget burning 16.7× over 1 h")


def test_the_fast_pair_stops_five_minutes_after_the_burn_stops(pipeline):
    # Late for 20 minutes, then fresh: the hour still burns, the 5-minute window clears.
    last = T - timedelta(minutes=10)
    late_streak(pipeline, last - timedelta(minutes=19), last, T)
    assert fires(pipeline, last + timedelta(minutes=4)) is not None
    assert fires(pipeline, last + timedelta(minutes=5)) is None


def test_a_burn_rate_incident_opens_and_resolves_through_the_rule_table(pipeline, monkeypatch):
    last = T - timedelta(minutes=10)
    late_streak(pipeline, last - timedelta(minutes=19), last, T)

    def run(at):
        monkeypatch.setattr("pipelines.clock.now", lambda: at)
        pipeline.last_sync_at = at
        pipeline.save()
        return evaluate.evaluate([pipeline], at, {}, rules.METRICS)

    assert run(last).opened
    incident = Incident.objects.get(rule=RuleKind.SLO_FAST)
    assert incident.severity == Severity.CRITICAL and "over 1 h and" in incident.summary
    # It fires while a late minute is in the 5-minute window (to last + 4), then is quiet; the incident
    # resolves after RESOLVE_AFTER (5 min) of quiet.
    assert incident in run(last + timedelta(minutes=4)).updated
    assert incident not in run(last + timedelta(minutes=5)).updated
    assert run(last + timedelta(minutes=8)).resolved == []
    assert run(last + timedelta(minutes=9)).resolved == [incident.pk]


def test_missing_recent_data_never_fires_nor_counts_as_good(pipeline):
    hours(pipeline, 47, late=lambda i: 60)  # everything late, but no minute rows: the short windows are unknown
    (fresh, *_), _ = slo(pipeline)
    assert fresh.burns[5] is None and fresh.burns[60] is None
    assert fresh.known and fresh.compliance == 0
    assert fires(pipeline, T) is None


def test_metrics_exports_each_known_objectives_budget_left(pipeline, client, settings):
    settings.METRICS_TOKEN = "a-token-for-the-slo-metrics-test"
    hours(pipeline, 48, late=lambda i: 6 if i == 0 else 0)  # 6 late of 2,880 minutes: 58 % of 14.4 left
    (fresh, *_), _ = slo(pipeline)
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}").content.decode()
    line = next(x for x in body.splitlines() if x.startswith("opsboard_pipeline_slo_error_budget_remaining_ratio{"))
    assert 'pipeline="orders"' in line and 'objective="freshness"' in line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(fresh.budget_left_pct / 100)
    assert fresh.budget_left_pct == pytest.approx(100 * (1 - 6 / (0.005 * 2880)))
    assert 'objective="delivery"' not in body  # unknown (nothing sent): no sample, never a made-up 1
