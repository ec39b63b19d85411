"""The API objectives on hand-made histories with frozen time: availability (5xx share of requests)
and latency (minutes whose p99 reached the threshold), only where an API is discovered, unknown with
too little data, counted in the budget left and named by the burn-rate rules when they burn worst."""

from datetime import timedelta

import pytest
from django.urls import reverse

from pipelines.alerting import evaluate, rules
from pipelines.collection import retention
from pipelines.models import Incident, MetricRollup, MetricSample, Pipeline, RuleKind, Severity
from pipelines.slo import compute, windows
from pipelines.ui.overview import OVERVIEW_FIELDS
from tests.slo.test_slo import DAY, T, fires, minutes, slo
from tests.slo.test_slo import pipeline as pipeline  # the fixture


@pytest.fixture
def api(pipeline):
    pipeline.api_id, pipeline.api_stage = "a1b2c3", "prod"
    pipeline.save()
    return pipeline


def api_hours(p, n, requests=6000, errors=lambda i: 0, slow=lambda i: 0, latency_minutes=60, skip=lambda i: False):
    """`n` rollup hours before the minute rows' span (i = 0 is the newest), fresh, with API counts."""
    MetricRollup.objects.bulk_create(
        [
            MetricRollup(
                pipeline=p,
                hour=T - timedelta(hours=2 + i),
                samples=60,
                age_minutes=60,
                late_minutes=0,
                api_minutes=60,
                api_requests=requests,
                api_5xx_requests=errors(i),
                api_latency_minutes=latency_minutes,
                api_slow_minutes=slow(i),
            )
            for i in range(n)
            if not skip(i)
        ]
    )


def api_minutes(p, n=60, count=100, errors=lambda i: 0, p99=lambda i: 200.0, **series):
    """The last `n` minute rows: fresh, `count` requests a minute, `errors(i)` of them 5xx."""
    minutes(
        p,
        n,
        oldest_age=lambda i: 30,
        api_count=lambda i: count,
        api_5xx=errors,
        api_latency_p99=p99,
        **series,
    )


def by_name(objs):
    return {o.name: o for o in objs}


def test_a_steady_api_meets_both_objectives_with_its_budget_nearly_whole(api):
    api_hours(api, 47, errors=lambda i: 3)
    api_minutes(api)
    objs, _ = slo(api)
    avail, latency = by_name(objs)[compute.API_AVAILABILITY], by_name(objs)[compute.API_LATENCY]
    requests = 47 * 6000 + 60 * 100
    assert avail.label == "fewer than 0.1 % of API requests answer 5xx" and avail.target == pytest.approx(99.9)
    assert avail.known and avail.sli.measured_minutes == 48 * 60 and avail.coverage_days == pytest.approx(2.0)
    assert avail.compliance == pytest.approx(100 * (1 - 141 / requests))
    assert avail.budget_total == pytest.approx(0.001 * requests) and avail.unit == "requests"
    assert avail.budget_left_pct == pytest.approx(100 * (1 - 141 / (0.001 * requests)))
    assert avail.burns[60] == 0 and avail.burns[5] == 0
    assert latency.label == "99.5 % of minutes with requests have a p99 latency under 1,000 ms"
    assert latency.known and latency.compliance == 100 and latency.budget_left_pct == 100
    assert compute.worst_budget_left(objs) == pytest.approx(avail.budget_left_pct)  # the smallest known


def test_a_5xx_spike_burns_the_availability_budget_and_the_fast_rule_names_it(api):
    api_hours(api, 47)
    api_minutes(api, errors=lambda i: 20 if i >= 50 else 0)  # 20 % of requests for the last 10 minutes
    objs, _ = slo(api)
    avail = by_name(objs)[compute.API_AVAILABILITY]
    assert avail.burns[60] == pytest.approx((200 / 6000) / 0.001)  # 33.3×
    assert avail.burns[5] == pytest.approx(0.2 / 0.001)
    assert avail.budget_left == pytest.approx(0.001 * (47 * 6000 + 6000) - 200)
    found = fires(api, T)
    assert found.severity == Severity.CRITICAL
    assert found.summary.startswith("API availability budget burning 33.3× over 1 h and 200× over 5 min")


def test_the_rule_names_the_api_when_it_burns_worse_than_freshness(api):
    api_hours(api, 22)
    # Late for the last 5 minutes (freshness 16.7× over 1 h) and 5xx at 20 % for the last 10 (33.3×).
    api_minutes(api, errors=lambda i: 20 if i >= 50 else 0)
    MetricSample.objects.filter(pipeline=api, minute__gt=T - timedelta(minutes=5)).update(oldest_age=1200)
    assert fires(api, T).summary.startswith("API availability budget burning 33.3× over 1 h")
    assert evaluate.evaluate([api], T, {}, rules.METRICS).opened
    incident = Incident.objects.get(rule=RuleKind.SLO_FAST)
    assert incident.summary.startswith("API availability budget burning")
    # Once the 5xx stop, freshness still burns and is named instead.
    MetricSample.objects.filter(pipeline=api).update(api_5xx=0)
    assert fires(api, T).summary.startswith("freshness budget burning 16.7× over 1 h")


def test_slow_minutes_spend_the_latency_budget_against_the_threshold(api):
    api_hours(api, 47, slow=lambda i: 1 if i < 24 else 0)
    api_minutes(api, p99=lambda i: 1500.0 if i >= 54 else 300.0)  # the last 6 minutes at 1.5 s
    latency = by_name(slo(api)[0])[compute.API_LATENCY]
    assert latency.sli.bad == 24 + 6 and latency.sli.measured_minutes == 48 * 60
    assert latency.compliance == pytest.approx(100 * (1 - 30 / (48 * 60)))
    assert latency.budget_total == pytest.approx(0.005 * 48 * 60) and latency.unit == "minutes"
    assert latency.burns[60] == pytest.approx((6 / 60) / 0.005) and latency.burns[5] == pytest.approx(200)
    assert fires(api, T).summary.startswith("API latency budget burning 20× over 1 h and 200× over 5 min")
    # With a 2-second threshold (and a 99 % target, shared with freshness) the recent minutes are fast.
    api.slo_api_latency_ms, api.slo_freshness_target = 2000, 99.0
    api.save()
    latency = by_name(slo(api)[0])[compute.API_LATENCY]
    assert latency.sli.bad == 24 and latency.burns[60] == 0  # rolled-up hours keep the threshold of their time
    assert latency.label == "99 % of minutes with requests have a p99 latency under 2,000 ms"


def test_the_rollup_keeps_the_api_counts_the_slos_read(api):
    start = T - timedelta(hours=3)
    minutes(
        api,
        60,
        end=start + timedelta(minutes=59),
        api_count=lambda i: None if i < 5 else 10,
        api_5xx=lambda i: None if i < 5 else (3 if i == 7 else 0),
        api_latency_p99=lambda i: None if i < 10 else (1000.0 if i < 14 else 80.0),
    )
    retention.rollup_range(start, start + timedelta(hours=1))
    r = MetricRollup.objects.get(pipeline=api)
    assert (r.api_minutes, r.api_requests, r.api_5xx_requests) == (55, 550, 3)
    assert (r.api_latency_minutes, r.api_slow_minutes) == (50, 4)  # 1000 ms reaches the 1000 ms threshold


def test_gappy_api_data_is_unknown_never_perfect(api):
    # Half a day of API readings, and two days rolled up before the API columns existed (null).
    api_hours(api, 12)
    MetricRollup.objects.bulk_create(
        MetricRollup(pipeline=api, hour=T - timedelta(hours=20 + i), samples=60, age_minutes=60, late_minutes=0)
        for i in range(48)
    )
    api_minutes(api, n=60, count=None, errors=lambda i: None, p99=lambda i: 900.0 if i % 6 == 0 else None)
    objs, counts = slo(api)
    avail, latency = by_name(objs)[compute.API_AVAILABILITY], by_name(objs)[compute.API_LATENCY]
    assert by_name(objs)[compute.FRESHNESS].known  # the queue's own objective has the days
    assert not avail.known and avail.compliance is None and avail.budget_left_pct is None
    assert avail.reason == "only 0.5 days measured (at least 1 needed)"
    assert not latency.known and latency.reason.startswith("only 0.5 days measured")
    assert latency.burns[60] is None and avail.burns[60] is None  # 10 of 60 minutes with a p99: too few
    assert counts[DAY * 28].api_minutes == 12 * 60
    assert compute.worst_budget_left(objs) == by_name(objs)[compute.FRESHNESS].budget_left_pct


def test_an_api_without_requests_is_unknown_with_the_reason(api):
    api_hours(api, 47, requests=0, latency_minutes=0)
    api_minutes(api, count=0, p99=lambda i: None)
    avail = by_name(slo(api)[0])[compute.API_AVAILABILITY]
    assert not avail.known and avail.reason == "no API requests in the window"


def test_without_an_api_its_objectives_are_not_measured(pipeline):
    api_hours(pipeline, 47, errors=lambda i: 6000)  # even with counts stored, no API means not measured
    objs, _ = slo(pipeline)
    for name in (compute.API_AVAILABILITY, compute.API_LATENCY):
        o = by_name(objs)[name]
        assert not o.applies and not o.known and o.reason == "no API discovered: not measured"
    assert compute.worst_budget_left(objs) == by_name(objs)[compute.FRESHNESS].budget_left_pct
    assert fires(pipeline, T) is None


def test_the_overview_budget_counts_the_api_in_one_more_query(api, django_assert_max_num_queries):
    api_hours(api, 47, errors=lambda i: 6)  # a 0.1 % 5xx share spends the whole availability budget
    api_minutes(api, errors=lambda i: 0)
    read = list(Pipeline.objects.only(*OVERVIEW_FIELDS))  # as the overview reads them
    with django_assert_max_num_queries(4):
        left = windows.budgets_left(read, T)
    avail = by_name(slo(api)[0])[compute.API_AVAILABILITY]
    assert left[api.pk] == pytest.approx(avail.budget_left_pct) and left[api.pk] < 10


@pytest.fixture
def admin_client(client, db):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    return client


def test_the_slo_page_shows_the_api_rows_or_says_there_is_no_api(api, admin_client):
    api_hours(api, 47, errors=lambda i: 3, slow=lambda i: 1 if i == 0 else 0)
    api_minutes(api)
    page = admin_client.get(reverse("admin:pipelines_pipeline_slo", args=[api.pk])).content.decode()
    assert 'data-objective="api_availability"' in page and 'data-objective="api_latency"' in page
    assert "<strong>API availability</strong>" in page and "<strong>API latency</strong>" in page
    assert "fewer than 0.1 % of API requests answer 5xx" in page
    assert "99.5 % of minutes with requests have a p99 latency under 1,000 ms" in page
    assert "requests left)" in page and "2.0 of 28 days measured" in page
    assert "no API: none is discovered" not in page
    api.api_id = ""
    api.save()
    page = admin_client.get(reverse("admin:pipelines_pipeline_slo", args=[api.pk])).content.decode()
    assert 'data-objective="api_latency"' not in page
    assert "API availability and latency" in page and "no API: none is discovered" in page
