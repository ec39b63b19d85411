"""The SLO page and the overview's budget column, read the way an operator reads them: through the
admin with Django's client, and in a real headless Chromium."""

from datetime import timedelta

import pytest
from django.urls import reverse

from pipelines import clock
from pipelines.alerting import evaluate, rules
from pipelines.collection import retention
from pipelines.models import AwsAccount, MetricSample, Pipeline
from tests.browser import SHOTS, browser, log_in


def burning_pipeline(name="orders", days=2):
    """`days` of minutes, fresh but for the last 20 minutes (past the 15-min SLA), DLQ arrivals of
    0.5 % of sends (half the 1 % allowed); rolled up, and the rule table run on it."""
    at = clock.now().replace(second=0, microsecond=0)
    account = AwsAccount.objects.get_or_create(name="prod", region="us-east-1")[0]
    p = Pipeline.objects.create(
        name=name,
        account=account,
        queue_url=f"http://h/123456789012/{name}",
        dlq_url=f"http://h/123456789012/{name}-dlq",
        retention_period=4 * 86400,
        oldest_age_sla=900,
        last_sync_at=at,
    )
    rows = []
    for m in range(days * 24 * 60 - 1, -1, -1):
        rows.append(
            MetricSample(
                pipeline=p,
                minute=at - timedelta(minutes=m),
                oldest_age=1200 if m < 20 else 60,
                dlq_visible=(days * 24 * 60 - m) // 100,  # one arrival every 100 minutes
                sent=2,
            )
        )
    MetricSample.objects.bulk_create(rows, batch_size=2000)
    retention.rollup_range(at - timedelta(days=days + 1), at.replace(minute=0))
    evaluate.evaluate([p], at, {}, rules.METRICS)
    p.refresh_from_db()
    return p


@pytest.fixture
def admin_client(client, db):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    return client


def test_it_shows_each_objective_its_budget_and_why_a_burn_rule_fires(admin_client):
    p = burning_pipeline()
    page = admin_client.get(reverse("admin:pipelines_pipeline_slo", args=[p.pk])).content.decode()
    assert "99.5 % of minutes with the oldest message younger than 15 min" in page
    assert "2.0 of 28 days measured" in page
    assert "fewer than 1 % of sent messages reach the DLQ" in page
    assert "freshness budget burning" in page and "over 1 h and" in page  # the fast pair's finding
    assert "minutes left)" in page and "messages left)" in page


def test_too_little_data_is_unknown_on_the_page_and_the_overview(admin_client):
    p = burning_pipeline("young", days=0)
    MetricSample.objects.create(pipeline=p, minute=clock.now(), oldest_age=30)
    page = admin_client.get(reverse("admin:pipelines_pipeline_slo", args=[p.pk])).content.decode()
    assert "unknown: only 0.0 days measured (at least 1 needed)" in page
    assert "100 %" not in page
    overview = admin_client.get(reverse("admin:index")).content.decode()
    assert 'title="less than a day measured">unknown</span>' in overview


def test_the_overview_shows_the_smallest_budget_left(admin_client):
    p = burning_pipeline()
    rows = admin_client.get(reverse("admin:overview_rows")).content.decode()
    assert f'href="/admin/pipelines/pipeline/{p.pk}/slo/"' in rows
    assert 'data-label="Budget left"' in rows


@browser
@pytest.mark.django_db(transaction=True)
def test_an_operator_opens_the_slo_page_from_the_pipeline_page(page, live_server):
    p = burning_pipeline()
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dashboard/")
    page.click("text=SLOs")
    page.wait_for_function("() => document.querySelectorAll('#ob-slo-objectives tbody tr').length === 2")
    fresh = page.locator("#ob-slo-objectives tr[data-objective=freshness]").inner_text()
    assert "2.0 of 28 days measured" in fresh and "minutes left" in fresh
    firing = page.locator("#ob-slo-pairs tr.ob-slo-firing")
    assert firing.count() >= 1 and "freshness budget burning" in firing.first.inner_text()
    page.wait_for_function("() => document.getElementById('chart-budget').dataset.points !== undefined")
    assert int(page.get_attribute("#chart-budget", "data-points")) > 2 * 47  # two lines, an hour a point
    assert page.locator("#chart-budget .scatterlayer .trace").count() == 2
    page.screenshot(path=str(SHOTS / "slo.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/")
    cell = page.locator("#ob-rows tr", has_text=p.name).locator("td.ob-c-budget")
    assert cell.inner_text().endswith("%")
