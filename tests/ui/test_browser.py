"""In a real headless Chromium: log in, see pipelines with their health, open one, add one with a bad URL."""

import pytest

from pipelines import aws
from pipelines.alerting import history
from pipelines.collection import cycles, retention
from tests.browser import SHOTS, browser_test, log_in

pytestmark = browser_test


@pytest.mark.django_db(transaction=True)
def test_an_operator_sees_pipelines_and_their_health(page, live_server, register, target):
    from pipelines.models import Pipeline

    p = register("orders", api=True)
    register("bare", dlq=False, consumer=False)
    for _ in range(3):
        aws.client(target, "sqs").send_message(QueueUrl=p.dlq_url, MessageBody="failed")
    cycles.sync_pipelines(list(Pipeline.objects.select_related("account")))
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    orders = page.locator("#result_list tbody tr", has_text="orders")
    assert orders.locator(".field-status .ob-badge").inner_text() == "Warning"
    assert "3 message(s) in the DLQ" in orders.inner_text()
    page.screenshot(path=str(SHOTS / "pipelines.png"), full_page=True)
    page.click("text=orders")
    page.wait_for_selector("text=Discovered from AWS")
    body = page.inner_text("body")
    assert "orders-consumer" in body and "orders-api" in body and "/month" in body
    page.screenshot(path=str(SHOTS / "pipeline.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_a_bad_queue_url_shows_a_form_error_not_a_crash(page, live_server, account, emulator):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/add/")
    page.fill("#id_name", "ghost")
    page.select_option("#id_account", label=str(account))
    page.fill("#id_queue_url", f"{emulator.url}/123456789012/ghost")
    page.click("input[name=_save]")
    error = page.locator(".errorlist").first.inner_text()
    assert "No queue exists at" in error
    page.screenshot(path=str(SHOTS / "bad-url.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_an_operator_follows_a_spike_from_the_overview_to_its_charts(page, live_server):
    from datetime import timedelta

    from pipelines.clock import now
    from pipelines.models import AwsAccount, MetricSample, Pipeline

    at = now()
    account = AwsAccount.objects.create(name="prod", region="us-east-1")
    quiet = Pipeline.objects.create(
        name="quiet",
        account=account,
        queue_url="http://h/123456789012/quiet",
        last_sync_at=at,
        backlog=0,
        dlq_depth=0,
        retention_period=345600,
    )
    spiky = Pipeline.objects.create(
        name="spiky",
        account=account,
        queue_url="http://h/123456789012/spiky",
        queue_name="spiky",
        last_sync_at=at,
        backlog=4000,
        dlq_depth=3,
        dlq_url="http://h/123456789012/spiky-dlq",
        retention_period=345600,
        oldest_age=1200,
        function_name="spiky-consumer",
        maximum_concurrency=5,
    )
    rows = []
    for m in range(3 * 24 * 60, 0, -1):  # three days of minutes, with a gap an hour long
        if 600 <= m < 660:
            continue
        t = (at - timedelta(minutes=m)).replace(second=0, microsecond=0)
        level = 4000 - m * 100 if m < 40 else 50  # a spike over the last 40 minutes, rising 100/min
        rows.append(
            MetricSample(
                pipeline=spiky,
                minute=t,
                visible=max(level, 0),
                in_flight=10,
                dlq_visible=3,
                sent=120,
                deleted=100,
                oldest_age=60 + (400 - m) * 3 if m < 400 else 30,
                lambda_invocations=12,
                lambda_errors=1,
                lambda_concurrency=4,
            )
        )
        rows.append(MetricSample(pipeline=quiet, minute=t, visible=0, sent=5, deleted=5))
    MetricSample.objects.bulk_create(rows, batch_size=2000)
    retention.rollup_range(at - timedelta(days=3), at.replace(minute=0, second=0, microsecond=0))
    history.refresh([quiet, spiky], at)

    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/")
    first = page.locator("#ob-rows tr").first
    assert "spiky" in first.inner_text() and "growing" in first.inner_text()
    assert first.locator("svg.ob-spark polyline").count() >= 1
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

    page.click("#ob-rows >> text=spiky")
    page.wait_for_selector("#chart-backlog[data-points]")
    for chart in ("backlog", "age", "throughput", "lambda"):
        assert int(page.get_attribute(f"#chart-{chart}", "data-points")) > 0, chart
    assert page.locator("#chart-backlog .scatterlayer .trace path.js-line").count() >= 1
    page.screenshot(path=str(SHOTS / "pipeline-24h.png"), full_page=True)
    for r in ("1h", "7d", "30d"):
        page.click(f"#ob-ranges button[data-range='{r}']")
        page.wait_for_function(f"() => document.body.dataset.loadedRange === '{r}'")
        assert int(page.get_attribute("#chart-backlog", "data-points")) > 0, r
    assert "from hourly rollups" in page.inner_text("#ob-source")
    page.screenshot(path=str(SHOTS / "pipeline-30d.png"), full_page=True)
    # A bad custom range is explained on the page, not a crash.
    page.fill("#ob-start", "2026-11-20T10:00")
    page.fill("#ob-end", "2026-11-19T10:00")
    page.click("#ob-ranges button[data-range='custom']")
    page.wait_for_function("() => document.getElementById('ob-range-error').textContent.length > 0")
    assert "start before it ends" in page.inner_text("#ob-range-error")
