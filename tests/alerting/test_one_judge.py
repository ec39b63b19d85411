"""One judge: for every rule, the health reason and the incident come from the same finding.

Each case makes one rule fire on a hand-made history, runs what the cycles run after a sync (the
trend refresh, then the rule table for every source), and reads the verdict the way each surface
does: the pipeline's stored findings and health (overview, pipeline page, /metrics) and the
incident (incident list, notifications).
"""

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.alerting import evaluate, history, rules
from pipelines.models import (
    UNRESOLVED,
    AwsAccount,
    Health,
    Incident,
    MetricRollup,
    MetricSample,
    Pipeline,
    RuleKind,
    Severity,
)

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def pipeline(db, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    account = AwsAccount.objects.create(name="acct", region="us-east-1")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        queue_name="orders",
        dlq_url="http://h/123456789012/orders-dlq",
        dlq_arn="arn:aws:sqs:us-east-1:123456789012:orders-dlq",
        function_name="orders-consumer",
        api_id="abc123",
        api_kind="rest",
        retention_period=4 * 86400,
        last_sync_at=T,
        backlog=100,
        dlq_depth=0,
        oldest_age=60,
        oldest_age_sla=900,
        backlog_threshold=1000,
    )


def rows(p, minutes, **series):
    """`minutes` rows ending at T; each series is a function of the minute's index (0 = oldest)."""
    MetricSample.objects.bulk_create(
        [
            MetricSample(
                pipeline=p,
                minute=T - timedelta(minutes=minutes - 1 - i),
                **{name: value(i) for name, value in series.items()},
            )
            for i in range(minutes)
        ]
    )


def quiet(p):
    rows(p, 60, visible=lambda i: 100, oldest_age=lambda i: 60, dlq_visible=lambda i: 0, api_latency_avg=lambda i: 80)


def backlog(p):
    p.backlog = 1500
    rows(p, 8, visible=lambda i: 1500, oldest_age=lambda i: 60)


def forecast(p):
    p.backlog = 900
    rows(p, 10, visible=lambda i: 540 + 40 * i, oldest_age=lambda i: 60)


def dlq(p):
    p.dlq_depth = 3
    rows(p, 20, visible=lambda i: 100, dlq_visible=lambda i: 3)


def dlq_growing(p):
    p.dlq_depth = 9
    rows(p, 20, visible=lambda i: 100, dlq_visible=lambda i: 9 if i > 15 else 3)


def oldest_age(p):
    p.oldest_age = 1200
    rows(p, 5, visible=lambda i: 100, oldest_age=lambda i: 1200)


def time_to_loss(p):
    p.oldest_age = int(0.6 * p.retention_period)
    rows(p, 10, visible=lambda i: 100, oldest_age=lambda i: p.oldest_age - 60 * (9 - i))


def throttles(p):
    rows(p, 5, visible=lambda i: 100, lambda_throttles=lambda i: 3, lambda_invocations=lambda i: 10)


def errors(p):
    rows(p, 5, visible=lambda i: 100, lambda_errors=lambda i: 10, lambda_invocations=lambda i: 100)


def api_5xx(p):
    rows(p, 5, visible=lambda i: 100, api_count=lambda i: 100, api_5xx=lambda i: 3)


def api_latency(p):
    rows(p, 60, visible=lambda i: 100, api_latency_avg=lambda i: 900 if i >= 50 else 100)


def hours(p, n, late):
    """`n` rolled-up hours before the last two (the minute rows' span), `late` late minutes in each."""
    MetricRollup.objects.bulk_create(
        [
            MetricRollup(pipeline=p, hour=T - timedelta(hours=2 + i), samples=60, age_minutes=60, late_minutes=late)
            for i in range(n)
        ]
    )


def slo_fast(p):
    rows(p, 60, visible=lambda i: 100, oldest_age=lambda i: 1200)  # an hour past the 15-min SLA: 200×


def slo_medium(p):
    hours(p, 5, late=10)  # 6 h: 53 late minutes of 360 (29×); 30 min: 1 of 30 (6.7×); 1 h: 3 of 60 (10×)
    rows(p, 60, visible=lambda i: 100, oldest_age=lambda i: 1200 if i % 20 == 0 else 60)


def slo_slow(p):
    hours(p, 71, late=1)  # 3 days: 1.7 % late (3.3×); 6 h: 7 of 360 (3.9×); 1 h: 2 of 60 (6.7×)
    rows(p, 60, visible=lambda i: 100, oldest_age=lambda i: 1200 if i % 30 == 0 else 60)


def stale(p):
    p.consecutive_failures, p.last_error = 3, "queue: AccessDenied"


CASES = {
    RuleKind.BACKLOG: backlog,
    RuleKind.FORECAST: forecast,
    RuleKind.DLQ: dlq,
    RuleKind.OLDEST_AGE: oldest_age,
    RuleKind.TIME_TO_LOSS: time_to_loss,
    RuleKind.THROTTLES: throttles,
    RuleKind.ERRORS: errors,
    RuleKind.API_5XX: api_5xx,
    RuleKind.API_LATENCY: api_latency,
    RuleKind.STALE: stale,
    RuleKind.SLO_FAST: slo_fast,
    RuleKind.SLO_MEDIUM: slo_medium,
    RuleKind.SLO_SLOW: slo_slow,
}


def judge(p):
    """What the cycles and the clock run after a sync."""
    p.save()
    recent = history.refresh([p], T)
    for source in (rules.FAST, rules.METRICS, rules.CLOCK):
        evaluate.evaluate([p], T, recent, source)
    p.refresh_from_db()


def test_every_rule_has_a_case():
    assert set(CASES) == set(RuleKind) == set(rules.RULES)


def test_a_quiet_pipeline_has_no_findings_and_no_incidents(pipeline):
    quiet(pipeline)
    judge(pipeline)
    assert pipeline.findings() == [] and pipeline.current_health(T) == (Health.OK, [])
    assert not Incident.objects.exists()


@pytest.mark.parametrize("kind", list(CASES), ids=lambda k: k.value)
def test_the_health_reason_and_the_incident_come_from_the_same_finding(pipeline, kind):
    CASES[kind](pipeline)
    judge(pipeline)
    incident = Incident.objects.get(pipeline=pipeline, rule=kind, status__in=UNRESOLVED)
    stored = {rule: (severity, summary) for severity, summary, rule in pipeline.findings()}
    assert stored[kind.value] == (Severity(incident.severity), incident.summary)
    # Every firing rule has its incident and nothing else has one; the health is the worst of them.
    open_incidents = {i.rule: (Severity(i.severity), i.summary) for i in Incident.objects.filter(status__in=UNRESOLVED)}
    assert open_incidents == stored
    health, reasons = pipeline.current_health(T)
    assert health == Health.worst(Health.of(sev) for sev, _ in stored.values())
    assert (Health.of(incident.severity), incident.summary) in reasons
    assert pipeline.health == health.value


@pytest.mark.parametrize(
    ("case", "fired"),
    [
        (slo_fast, {RuleKind.SLO_FAST: Severity.CRITICAL}),
        (slo_medium, {RuleKind.SLO_MEDIUM: Severity.CRITICAL}),
        (slo_slow, {RuleKind.SLO_SLOW: Severity.WARNING}),
    ],
    ids=["fast", "medium", "slow"],
)
def test_each_burn_rate_pair_fires_on_its_own_burn(pipeline, case, fired):
    case(pipeline)
    judge(pipeline)
    slo = {RuleKind(rule): Severity(sev) for sev, _, rule in pipeline.findings() if rule.startswith("slo_")}
    assert slo == fired


def test_a_burn_rate_incident_says_why(pipeline):
    slo_fast(pipeline)
    judge(pipeline)
    incident = Incident.objects.get(rule=RuleKind.SLO_FAST)
    assert incident.summary == (
        "freshness budget burning 200× over 1 h and 200× over 5 min: 30 % of the 28-day budget used in the last 1 h"
    )


def test_a_growing_dlq_is_critical_in_both_places(pipeline):
    dlq_growing(pipeline)
    judge(pipeline)
    incident = Incident.objects.get(rule=RuleKind.DLQ)
    assert incident.severity == Severity.CRITICAL and pipeline.current_health(T)[0] == Health.CRITICAL
    assert pipeline.finding_severity(RuleKind.DLQ) == Severity.CRITICAL


def test_a_rule_switched_off_drops_its_finding_and_ends_its_incident(pipeline):
    oldest_age(pipeline)
    judge(pipeline)
    assert pipeline.finding_severity(RuleKind.OLDEST_AGE) == Severity.WARNING
    pipeline.alert_rules.create(kind=RuleKind.OLDEST_AGE, enabled=False)
    judge(pipeline)
    assert pipeline.finding_severity(RuleKind.OLDEST_AGE) is None
    assert not Incident.objects.filter(rule=RuleKind.OLDEST_AGE, status__in=UNRESOLVED).exists()


def test_findings_of_other_cycles_stay_until_their_rules_run_again(pipeline):
    errors(pipeline)
    judge(pipeline)
    assert pipeline.finding_severity(RuleKind.ERRORS) is not None
    # A fast cycle does not evaluate the error rate: its finding stands, and so does the health.
    evaluate.evaluate([pipeline], T, history.refresh([pipeline], T), rules.FAST)
    pipeline.refresh_from_db()
    assert pipeline.finding_severity(RuleKind.ERRORS) is not None
    assert pipeline.current_health(T)[0] != Health.OK


def test_an_incident_whose_rule_went_quiet_says_so_while_the_health_is_ok(pipeline, client, monkeypatch):
    from django.contrib.auth.models import User
    from django.urls import reverse

    dlq(pipeline)
    judge(pipeline)
    MetricSample.objects.all().delete()
    pipeline.dlq_depth = 0
    later = T + timedelta(minutes=2)
    monkeypatch.setattr("pipelines.clock.now", lambda: later)
    pipeline.last_sync_at = later
    recent = history.refresh([pipeline], later)
    evaluate.evaluate([pipeline], later, recent, rules.FAST)
    pipeline.refresh_from_db()
    assert pipeline.current_health(later) == (Health.OK, [])
    assert Incident.objects.get(rule=RuleKind.DLQ).is_unresolved  # resolves after 5 quiet minutes
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    page = client.get(reverse("admin:index")).content.decode()
    assert "quiet since 2 min ago; resolves in 3 min if it stays quiet" in page


def test_a_finding_and_the_health_it_makes_look_the_same():
    for severity in (Severity.CRITICAL, Severity.WARNING):
        assert Health.of(severity).value == severity.value and Health.of(severity).colour == severity.colour
    assert Health.of(Severity.INFO) == Health.OK
    assert Health.worst([]) == Health.OK and Health.worst([Health.STALE, Health.WARNING]) == Health.WARNING


def test_a_pipeline_whose_first_syncs_fail_shows_why_not_pending(pipeline):
    pipeline.last_sync_at = None
    stale(pipeline)
    judge(pipeline)
    incident = Incident.objects.get(rule=RuleKind.STALE)
    assert pipeline.current_health(T) == (Health.WARNING, [(Health.WARNING, incident.summary)])
    Incident.objects.all().delete()
    pipeline.consecutive_failures, pipeline.health_reasons = 0, []
    assert pipeline.current_health(T) == (Health.PENDING, [])


def test_a_hand_resolve_while_the_rule_fires_holds_for_an_hour_unless_it_gets_worse(pipeline, client, monkeypatch):
    from django.contrib.auth.models import User
    from django.urls import reverse

    from pipelines.alerting.incidents import RESOLVE_HOLD

    dlq(pipeline)
    judge(pipeline)
    first = Incident.objects.get(rule=RuleKind.DLQ)
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    page = client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])).content.decode()
    assert "Its rule still fires: resolved by hand, it stays resolved for 60 min" in page
    done = client.post(reverse("admin:incident_resolve", args=[first.pk]), {"next": "/admin/"}, follow=True)
    assert "it stays resolved until 13:00 UTC unless it gets worse" in done.content.decode()

    def again(at, depth=3):
        monkeypatch.setattr("pipelines.clock.now", lambda: at)
        MetricSample.objects.create(pipeline=pipeline, minute=at, visible=100, dlq_visible=depth)
        pipeline.dlq_depth, pipeline.last_sync_at = depth, at
        pipeline.save()
        report = evaluate.evaluate([pipeline], at, history.refresh([pipeline], at), rules.FAST)
        pipeline.refresh_from_db()
        return report

    report = again(T + timedelta(minutes=1))
    assert report.opened == [] and report.held == [pipeline.pk]
    assert pipeline.finding_severity(RuleKind.DLQ) == Severity.WARNING  # the health still says so
    assert not Incident.objects.filter(status__in=UNRESOLVED).exists()
    assert again(T + RESOLVE_HOLD + timedelta(minutes=1)).opened  # the hold is over: it pages again
    later = T + RESOLVE_HOLD + timedelta(minutes=2)
    Incident.objects.filter(status__in=UNRESOLVED).update(status="resolved", resolved_at=later, resolved_by="ops")
    assert again(later, depth=3).opened == []  # held again
    assert again(later + timedelta(minutes=1), depth=30).opened  # worse (the DLQ grows: critical): at once
