"""In a real headless Chromium: the pipeline page draws the 30-day daily cost chart."""

from datetime import timedelta

import pytest

from pipelines.clock import now
from pipelines.models import AwsAccount, MetricRollup, Pipeline
from tests.browser import SHOTS, browser_test, log_in

pytestmark = browser_test


@pytest.mark.django_db(transaction=True)
def test_it_draws_the_daily_cost_of_the_last_30_days(page, live_server):
    account = AwsAccount.objects.create(name="prod", region="us-east-1")
    p = Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        function_name="orders-consumer",
        function_memory_mb=512,
        batch_size=10,
    )
    today = now().replace(hour=0, minute=0, second=0, microsecond=0)
    MetricRollup.objects.bulk_create(
        MetricRollup(
            pipeline=p,
            hour=today - timedelta(days=d, hours=-h),
            samples=60,
            lambda_invocations=100 * d,
            lambda_duration_avg=200,
            sent=1000,
            received=1000,
            deleted=1000,
            empty_receives=0,
        )
        for d in range(1, 20)
        for h in range(24)
    )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dashboard/")
    page.wait_for_function("() => document.getElementById('chart-spend').dataset.drawn === '1'")
    chart = page.locator("#chart-spend")
    assert int(chart.get_attribute("data-points")) == 3 * 19  # Lambda, SQS and polling bars on 19 days
    assert chart.locator("g.trace.bars").count() == 3
    assert "USD per day" in chart.inner_text()
    page.locator("#chart-spend").screenshot(path=str(SHOTS / "spend-chart.png"))
