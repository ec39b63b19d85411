"""Alert rules on hand-made histories with frozen time, and the incidents they open, update, re-notify
and resolve."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from pipelines.alerting import deliveries, evaluate, history, incidents, rules
from pipelines.alerting.history import Row
from pipelines.alerting.rules import Config, Context
from pipelines.collection import store
from pipelines.models import (
    AlertRule,
    AwsAccount,
    ChannelKind,
    Delivery,
    Incident,
    IncidentStatus,
    MetricSample,
    NotificationChannel,
    Pipeline,
    RuleKind,
    Severity,
)

UTC = UTC
T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rows(n=30, end=T, **series):
    """n minute rows ending at `end`; each keyword is a list of n values (or one value for all)."""
    out = []
    for i in range(n):
        values = {k: (v[i] if isinstance(v, list) else v) for k, v in series.items()}
        out.append(Row(minute=end - timedelta(minutes=n - 1 - i), **{f: values.get(f) for f in Row._fields[1:]}))
    return out


def unsaved(**kw):
    defaults = {
        "name": "orders",
        "queue_url": "http://h/123456789012/orders",
        "backlog_threshold": 1000,
        "oldest_age_sla": 900,
        "retention_period": 4 * 86400,
        "dlq_url": "http://h/123456789012/orders-dlq",
        "function_name": "drain",
        "api_id": "abc123",
        "last_sync_at": T,
        "backlog": 0,
        "dlq_depth": 0,
        "oldest_age": 0,
    }
    return Pipeline(**{**defaults, **kw})


def check(kind, pipeline, history, trend=None, **cfg):
    rule = rules.RULES[kind]
    base = rule.config(pipeline)
    c = Config(cfg.get("enabled", True), cfg.get("threshold", base.threshold), cfg.get("minutes", base.minutes))
    return rule.check(Context(pipeline, history, trend, T), c)


# --- rules ------------------------------------------------------------------------------------------


def test_it_fires_on_a_backlog_only_after_it_held_above_the_threshold_for_the_whole_window():
    p = unsaved(backlog=1500)
    held = rows(10, visible=[900, 950, 1100, 1200, 1300, 1350, 1400, 1450, 1480, 1500])
    assert check(RuleKind.BACKLOG, p, held) is not None  # above since 7 minutes ago: 5-minute rule fires
    assert check(RuleKind.BACKLOG, p, held, minutes=8) is None  # not yet for 8 minutes
    dipped = rows(10, visible=[1200] * 7 + [990, 1200, 1500])
    assert check(RuleKind.BACKLOG, p, dipped) is None  # a dip 2 minutes ago restarts the clock
    f = check(RuleKind.BACKLOG, unsaved(backlog=6000), rows(10, visible=6000))
    assert f.severity == Severity.CRITICAL and "6,000 above 1,000" in f.summary


def test_it_fires_when_the_oldest_message_passes_its_sla():
    assert check(RuleKind.OLDEST_AGE, unsaved(oldest_age=600), []) is None
    f = check(RuleKind.OLDEST_AGE, unsaved(oldest_age=1800), [])
    assert f.severity == Severity.WARNING and "above the 15 min SLA" in f.summary


def test_time_to_loss_warns_past_half_the_retention_and_is_critical_at_80_percent():
    retention = 3 * 3600
    assert check(RuleKind.TIME_TO_LOSS, unsaved(retention_period=retention, oldest_age=5000), []) is None
    p = unsaved(retention_period=retention, oldest_age=6000, backlog=50)
    ages = rows(10, oldest_age=[6000 - 60 * (9 - i) for i in range(10)])
    f = check(RuleKind.TIME_TO_LOSS, p, [])  # no trend to project
    assert f.severity == Severity.WARNING and "56% of the 3.0 h retention" in f.summary
    # Ageing one second per second, 4,800 s are left: within 6 hours, so critical.
    f = check(RuleKind.TIME_TO_LOSS, p, ages, history.trend_from(p, ages, T))
    assert f.severity == Severity.CRITICAL and "messages start expiring in ~80 min" in f.summary
    f = check(RuleKind.TIME_TO_LOSS, unsaved(retention_period=retention, oldest_age=9000), [])
    assert f.severity == Severity.CRITICAL


def test_time_to_loss_also_fires_on_the_projection_before_half_the_retention_is_used():
    # 18% of a 3-hour retention, but ageing one second per second: messages expire in ~2.4 h.
    p = unsaved(retention_period=3 * 3600, oldest_age=2000, backlog=50)
    ages = rows(10, oldest_age=[2000 - 60 * (9 - i) for i in range(10)])
    f = check(RuleKind.TIME_TO_LOSS, p, ages, history.trend_from(p, ages, T))
    assert f.severity == Severity.CRITICAL and "19% of the 3.0 h retention" in f.summary
    # A 4-day queue at the same age is a day and more from any loss: nothing yet.
    p = unsaved(retention_period=4 * 86400, oldest_age=2000, backlog=50)
    assert check(RuleKind.TIME_TO_LOSS, p, ages, history.trend_from(p, ages, T)) is None
    # Ages falling: being worked through, no projection.
    falling = rows(10, oldest_age=[2600 - 60 * i for i in range(10)])
    p = unsaved(retention_period=3 * 3600, oldest_age=2060, backlog=50)
    assert check(RuleKind.TIME_TO_LOSS, p, falling, history.trend_from(p, falling, T)) is None


def test_dlq_is_a_warning_when_steady_and_critical_while_it_grows():
    p = unsaved(dlq_depth=12)
    assert check(RuleKind.DLQ, p, rows(20, dlq_visible=12)).severity == Severity.WARNING
    growing = rows(20, dlq_visible=[3] * 10 + [5, 6, 7, 8, 9, 10, 11, 12, 12, 12])
    f = check(RuleKind.DLQ, p, growing)
    assert f.severity == Severity.CRITICAL and "+9 in the last 15 min" in f.summary
    assert check(RuleKind.DLQ, unsaved(dlq_depth=0), rows(20, dlq_visible=0)) is None
    assert not rules.RULES[RuleKind.DLQ].applies(unsaved(dlq_url=""))


def test_it_counts_throttles_and_error_rates_over_the_window_ending_at_the_newest_data():
    # CloudWatch lags: the last 3 minutes have no Lambda data yet; the window ends before them.
    lagging = rows(
        30,
        throttles=[0] * 15 + [2] * 12 + [None] * 3,
        invocations=[100] * 27 + [None] * 3,
        errors=[0] * 20 + [10] * 7 + [None] * 3,
    )
    p = unsaved()
    f = check(RuleKind.THROTTLES, p, lagging)
    assert f.value == 20 and "20 Lambda throttle(s) in 10 min" in f.summary
    f = check(RuleKind.ERRORS, p, lagging)  # the default window: 5 minutes, 50 errors of 500
    assert f.value == pytest.approx(10.0) and "over 5 min (50 of 500)" in f.summary
    f = check(RuleKind.ERRORS, p, lagging, minutes=10)
    assert f.value == pytest.approx(7.0) and f.severity == Severity.WARNING  # 70 of 1,000
    assert check(RuleKind.ERRORS, p, lagging, minutes=10, threshold=10) is None
    # Too few invocations to judge: 3 errors in 4 is not a rate.
    assert check(RuleKind.ERRORS, p, rows(10, invocations=[0] * 6 + [1] * 4, errors=[0] * 7 + [1] * 3)) is None


def test_api_5xx_rate_and_latency_against_its_own_trailing_median():
    p = unsaved()
    f = check(RuleKind.API_5XX, p, rows(10, api_count=100, api_5xx=[0] * 5 + [8] * 5), minutes=10)
    assert f.value == pytest.approx(4.0)
    assert check(RuleKind.API_5XX, p, rows(10, api_count=100, api_5xx=[0] * 5 + [8] * 5)).value == pytest.approx(8.0)
    # Periodic spikes in the trailing hour do not raise the baseline: the median stays at 45 ms.
    trailing = [45.0] * 40 + [800.0] * 10
    assert check(RuleKind.API_LATENCY, p, rows(60, api_latency=trailing + [45.0] * 10)) is None
    f = check(RuleKind.API_LATENCY, p, rows(60, api_latency=trailing + [810.0] * 10))
    assert f is not None and "18.0× its trailing baseline of 45 ms" in f.summary
    # Without enough trailing minutes there is no baseline, so no verdict.
    assert check(RuleKind.API_LATENCY, p, rows(15, api_latency=[45.0] * 5 + [900.0] * 10)) is None
    assert not rules.RULES[RuleKind.API_LATENCY].applies(unsaved(api_id=""))


def test_the_forecast_fires_when_the_trend_crosses_the_threshold_within_the_horizon():
    p = unsaved(backlog=700)
    growing = rows(10, visible=[430 + 30 * i for i in range(10)])  # +30/min: 1,000 in 10 min
    trend = history.trend_from(p, growing, T)
    f = check(RuleKind.FORECAST, p, growing, trend)
    assert f.value == pytest.approx(10) and "on course to pass 1,000 in ~10 min" in f.summary
    assert check(RuleKind.FORECAST, p, growing, trend, threshold=5) is None  # beyond a 5-minute horizon
    flat = rows(10, visible=700)
    assert check(RuleKind.FORECAST, p, flat, history.trend_from(p, flat, T)) is None
    # An override of the backlog rule's threshold moves the forecast's target with it.
    f = rules.RULES[RuleKind.FORECAST].check(
        Context(p, growing, trend, T, backlog_limit=850), rules.RULES[RuleKind.FORECAST].config(p)
    )
    assert f.value == pytest.approx(5) and "on course to pass 850 in ~5 min" in f.summary
    # Already above and still growing: it stays open through the crossing.
    above = unsaved(backlog=1300)
    f = check(RuleKind.FORECAST, above, growing, history.trend_from(above, growing, T))
    assert "above 1,000 and still growing" in f.summary


def test_stale_fires_on_repeated_failures_or_old_data():
    assert check(RuleKind.STALE, unsaved(consecutive_failures=2), []) is None
    f = check(RuleKind.STALE, unsaved(consecutive_failures=3, last_error="queue: AccessDenied"), [])
    assert "3 syncs in a row failed: queue: AccessDenied" in f.summary
    f = check(RuleKind.STALE, unsaved(last_sync_at=T - timedelta(minutes=30)), [])
    assert "no data for 30 min" in f.summary


# --- incidents ---------------------------------------------------------------------------------------


@pytest.fixture
def pipeline(db):
    account = AwsAccount.objects.create(name="acct", region="us-east-1")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        queue_name="orders",
        retention_period=4 * 86400,
        last_sync_at=T,
        backlog=0,
        dlq_url="http://h/123456789012/orders-dlq",
        dlq_depth=0,
        oldest_age=0,
        backlog_threshold=1000,
    )


@pytest.fixture
def frozen(monkeypatch):
    """Frozen time, moved with .at = …"""

    class Clock:
        at = T

    clock = Clock()
    monkeypatch.setattr("pipelines.clock.now", lambda: clock.at)
    return clock


@pytest.fixture
def channel(db, pipeline):
    # A webhook to a closed loopback port: deliveries are recorded (and fail, which is not the point here).
    return NotificationChannel.objects.create(name="ops", kind=ChannelKind.WEBHOOK, target="http://127.0.0.1:9/")


def sync(pipeline, at, backlog=None, dlq=None, source=rules.FAST):
    """What a fast cycle does: store the minute, refresh health, evaluate the rules."""
    values = {}
    if backlog is not None:
        pipeline.backlog = values["visible"] = backlog
    if dlq is not None:
        pipeline.dlq_depth = values["dlq_visible"] = dlq
    pipeline.last_sync_at = at
    pipeline.save()
    MetricSample.objects.update_or_create(pipeline=pipeline, minute=store.floor_minute(at), defaults=values)
    recent = history.refresh([pipeline], at)
    return evaluate.evaluate([pipeline], at, recent, source)


def test_a_firing_rule_opens_one_incident_and_updates_it_while_it_keeps_firing(pipeline, frozen, channel):
    for i in range(8):
        frozen.at = T + timedelta(minutes=i)
        sync(pipeline, frozen.at, backlog=1500 + 100 * i)
    incidents = Incident.objects.filter(rule=RuleKind.BACKLOG)
    assert incidents.count() == 1
    inc = incidents.get()
    assert inc.status == IncidentStatus.OPEN and inc.opened_at == T + timedelta(minutes=5)
    assert inc.last_seen_at == T + timedelta(minutes=7) and "backlog 2,200 above 1,000" in inc.summary
    assert inc.notifications == 1
    assert list(Delivery.objects.filter(incident=inc).values_list("event", flat=True)) == ["opened"]


def test_it_re_notifies_an_unacknowledged_incident_and_stops_once_acknowledged(pipeline, frozen, channel):
    with override_settings(ALERT_RENOTIFY_MINUTES=30):
        for i in range(0, 80, 5):
            frozen.at = T + timedelta(minutes=i)
            sync(pipeline, frozen.at, dlq=4)
            if i == 65:
                Incident.objects.get(rule=RuleKind.DLQ).acknowledge("alice")
    inc = Incident.objects.get(rule=RuleKind.DLQ)
    # Opened at 0 (first sync); reminders at 30 and 60; acknowledged at 65: no reminder at 90.
    events = list(Delivery.objects.filter(incident=inc).order_by("pk").values_list("event", flat=True))
    assert events == ["opened", "reminder", "reminder"]
    assert inc.notifications == 3 and inc.status == IncidentStatus.ACKNOWLEDGED and inc.acknowledged_by == "alice"


def test_it_escalates_with_a_notification_and_resolves_when_the_rule_stops_firing(pipeline, frozen, channel):
    sync(pipeline, T, dlq=2)
    frozen.at = T + timedelta(minutes=1)
    for i in range(1, 4):
        sync(pipeline, T + timedelta(minutes=i), dlq=2)
    inc = Incident.objects.get(rule=RuleKind.DLQ)
    assert inc.severity == Severity.WARNING  # steady: the first minute is its own baseline
    frozen.at = T + timedelta(minutes=4)
    sync(pipeline, frozen.at, dlq=5)
    inc.refresh_from_db()
    assert inc.severity == Severity.CRITICAL and inc.peak_severity == Severity.CRITICAL
    frozen.at = T + timedelta(minutes=30)
    report = sync(pipeline, frozen.at, dlq=0)
    inc.refresh_from_db()
    assert report.resolved == [inc.pk] and inc.status == IncidentStatus.RESOLVED and inc.resolved_by == ""
    assert list(Delivery.objects.filter(incident=inc).order_by("pk").values_list("event", flat=True)) == [
        "opened",
        "escalated",
        "resolved",
    ]
    # The next time it fires is a new incident.
    sync(pipeline, frozen.at + timedelta(minutes=1), dlq=1)
    assert Incident.objects.filter(rule=RuleKind.DLQ).count() == 2


def test_a_concurrent_opening_joins_the_other_workers_incident(pipeline, frozen, channel):
    f = rules.Finding(Severity.WARNING, "3 message(s) in the DLQ", 3, 1)
    report = incidents.EvalReport()
    incidents.apply_finding(pipeline, RuleKind.DLQ, f, None, T, report)
    # A second worker that loaded its incidents before the first one committed also sees none.
    incidents.apply_finding(pipeline, RuleKind.DLQ, f, None, T, report)
    assert Incident.objects.filter(rule=RuleKind.DLQ).count() == 1
    assert len(report.opened) == 1 and Delivery.objects.count() == 1
    # And two workers resolving it: only one resolves (and notifies).
    inc = Incident.objects.get()
    stale_copy = Incident.objects.get()
    later = T + incidents.RESOLVE_AFTER
    incidents.apply_finding(pipeline, RuleKind.DLQ, None, inc, later, report)
    incidents.apply_finding(pipeline, RuleKind.DLQ, None, stale_copy, later, report)
    assert report.resolved == [inc.pk] and Delivery.objects.filter(event="resolved").count() == 1


def test_a_failed_sync_keeps_incidents_open_and_only_staleness_is_judged(pipeline, frozen):
    sync(pipeline, T, dlq=3)
    assert Incident.objects.filter(rule=RuleKind.DLQ, status=IncidentStatus.OPEN).exists()
    pipeline.dlq_depth = None
    pipeline.consecutive_failures, pipeline.last_error = 3, "DLQ: throttled"
    report = evaluate.evaluate([pipeline], T + timedelta(minutes=1), {}, rules.FAST, failed=[pipeline.pk])
    assert report.resolved == []
    assert Incident.objects.get(rule=RuleKind.STALE).summary.startswith("3 syncs in a row failed")


def test_overrides_change_thresholds_and_can_switch_a_rule_off(pipeline, frozen):
    AlertRule.objects.create(pipeline=pipeline, kind=RuleKind.DLQ, threshold=10)
    sync(pipeline, T, dlq=4)
    assert not Incident.objects.filter(rule=RuleKind.DLQ).exists()
    AlertRule.objects.filter(kind=RuleKind.DLQ).update(threshold=None, enabled=False)
    sync(pipeline, T + timedelta(minutes=1), dlq=40)
    assert not Incident.objects.exists()
    assert rules.RULES[RuleKind.BACKLOG].describe_default(pipeline) == "backlog above 1,000 for 5 min"
    assert not rules.RULES[RuleKind.THROTTLES].applies(pipeline)  # no consumer discovered
    # A rule without a window keeps none, whatever the override says.
    AlertRule.objects.create(pipeline=pipeline, kind=RuleKind.OLDEST_AGE, minutes=30, threshold=60)
    cfg = rules.RULES[RuleKind.OLDEST_AGE].config(pipeline, AlertRule.objects.get(kind=RuleKind.OLDEST_AGE))
    assert cfg.minutes is None and cfg.threshold == 60


def test_a_broken_rule_is_reported_and_the_others_still_run(pipeline, frozen, monkeypatch):
    def broken(c, cfg):
        raise ValueError("bad data")

    monkeypatch.setitem(
        rules.RULES,
        RuleKind.BACKLOG,
        rules.RULES[RuleKind.BACKLOG].__class__(**{**rules.RULES[RuleKind.BACKLOG].__dict__, "check": broken}),
    )
    report = sync(pipeline, T, backlog=5000, dlq=2)
    assert report.errors == ["orders backlog: bad data"]
    assert Incident.objects.filter(rule=RuleKind.DLQ).exists()


def test_the_clock_evaluation_catches_a_pipeline_nobody_synced(pipeline, frozen):
    report = evaluate.evaluate_clock(T + timedelta(minutes=20))
    assert len(report.opened) == 1
    assert "no data for 20 min" in Incident.objects.get(rule=RuleKind.STALE).summary


def test_the_health_reason_is_the_finding_that_moves_the_incident(pipeline, frozen):
    sync(pipeline, T, dlq=3)
    for i in range(1, 4):
        sync(pipeline, T + timedelta(minutes=i), dlq=3 + i)  # growing: the DLQ incident is critical
    pipeline.refresh_from_db()
    assert Incident.objects.get(rule=RuleKind.DLQ).severity == Severity.CRITICAL
    assert pipeline.health == "critical"
    assert pipeline.health_reasons == [["critical", "6 message(s) in the DLQ, +3 in the last 15 min", "dlq"]]


def test_a_severity_bouncing_around_its_line_escalates_once(pipeline, frozen, channel):
    severities = []
    for i in range(14):
        frozen.at = T + timedelta(minutes=i)
        sync(pipeline, frozen.at, backlog=4900 if i % 2 else 5100)  # critical at 5,000 (5× the threshold)
        inc = Incident.objects.filter(rule=RuleKind.BACKLOG).first()
        severities.append(inc and inc.severity)
    # Opened at minute 5 as a warning, critical at 6, then warning, critical… but told only once.
    assert severities[5:9] == ["warning", "critical", "warning", "critical"]
    events = list(Delivery.objects.filter(incident=inc).order_by("pk").values_list("event", flat=True))
    assert events == ["opened", "escalated"] and inc.peak_severity == Severity.CRITICAL


def test_an_incident_resolves_only_after_its_rule_stays_quiet(pipeline, frozen, channel):
    sync(pipeline, T, dlq=2)
    for i in range(1, 5):  # quiet for 4 minutes: still open
        frozen.at = T + timedelta(minutes=i)
        assert sync(pipeline, frozen.at, dlq=0).resolved == []
    sync(pipeline, T + timedelta(minutes=5), dlq=1)  # firing again: the same incident (refilling: growing)
    assert Incident.objects.filter(rule=RuleKind.DLQ).count() == 1
    frozen.at = T + timedelta(minutes=10)
    assert len(sync(pipeline, frozen.at, dlq=0).resolved) == 1
    assert list(Delivery.objects.order_by("pk").values_list("event", flat=True)) == ["opened", "escalated", "resolved"]


def test_disabling_a_pipeline_resolves_its_incidents(pipeline, frozen, channel):
    sync(pipeline, T, dlq=2)
    Pipeline.objects.filter(pk=pipeline.pk).update(enabled=False)
    report = evaluate.evaluate_clock(T + timedelta(minutes=1))
    inc = Incident.objects.get(rule=RuleKind.DLQ)
    assert report.resolved == [inc.pk] and inc.resolved_by == "(pipeline disabled)"
    assert Delivery.objects.filter(event="resolved").count() == 1


def test_an_old_burst_of_cloudwatch_data_is_not_news():
    # Throttles 40 minutes ago, then an idle function publishing nothing since.
    old = rows(60, throttles=[0] * 10 + [5] * 10 + [None] * 40, invocations=[10] * 20 + [None] * 40)
    assert check(RuleKind.THROTTLES, unsaved(), old) is None


def test_stale_fires_when_cloudwatch_keeps_failing():
    p = unsaved(metrics_error="GetMetricData: AccessDenied", metrics_synced_until=T - timedelta(minutes=20))
    f = check(RuleKind.STALE, p, [])
    assert f.summary == "CloudWatch metrics failing: GetMetricData: AccessDenied"
    p.metrics_synced_until = T - timedelta(minutes=5)  # one failure after a recent success: not yet
    assert check(RuleKind.STALE, p, []) is None


def test_notifications_are_queued_with_the_state_change_or_not_at_all(pipeline, frozen, channel, monkeypatch):

    def broken(incident, event):
        Delivery.objects.create(channel=channel, event=event, incident=incident)
        raise RuntimeError("could not render")

    monkeypatch.setattr(deliveries, "enqueue", broken)
    report = sync(pipeline, T, dlq=2)
    assert report.errors and not Incident.objects.exists() and not Delivery.objects.exists()
    monkeypatch.undo()
    frozen.at = T + timedelta(minutes=1)
    sync(pipeline, frozen.at, dlq=2)  # the next evaluation opens it, with its notification
    assert Delivery.objects.get().incident == Incident.objects.get()
