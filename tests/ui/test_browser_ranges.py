"""In a headless Chromium whose clock reads New York time: custom ranges in local time that survive a
reload, charts scaled to what matters with labelled axes, and an overview that fits a phone."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipelines.alerting import evaluate, history, rules
from pipelines.clock import now
from pipelines.collection import retention
from pipelines.models import AwsAccount, MetricSample, Pipeline
from tests.browser import SHOTS, browser_test, chromium_page, log_in

pytestmark = browser_test

NEW_YORK = "America/New_York"
FOUR_DAYS = 4 * 86400


@pytest.fixture
def ny_page(live_server):
    """A 1440 px wide page whose browser is in New York."""
    with chromium_page(timezone_id=NEW_YORK) as pg:
        yield pg


def pipeline_with_history(name, hours, account=None, **fields):
    """A pipeline with `hours` of minute rows up to now: a backlog and an oldest message of a few minutes."""
    at = now()
    account = account or AwsAccount.objects.get_or_create(name="prod", region="us-east-1")[0]
    defaults = {
        "queue_name": name,
        "last_sync_at": at,
        "backlog": 180,
        "in_flight": 4,
        "oldest_age": 300,
        "oldest_age_sla": 900,
        "retention_period": FOUR_DAYS,
        "backlog_threshold": 1000,
    }
    p = Pipeline.objects.create(
        name=name, account=account, queue_url=f"http://h/123456789012/{name}", **{**defaults, **fields}
    )
    top = (at - timedelta(minutes=1)).replace(second=0, microsecond=0)
    MetricSample.objects.bulk_create(
        [
            MetricSample(
                pipeline=p,
                minute=top - timedelta(minutes=m),
                visible=100 + (m % 60),
                in_flight=4,
                oldest_age=120 + (m % 30) * 10,
                sent=60,
                received=61,
                deleted=60,
                lambda_invocations=6 if p.function_name else None,
                lambda_errors=0 if p.function_name else None,
                lambda_concurrency=4 if p.function_name else None,
                lambda_duration_avg=850 if p.function_name else None,
            )
            for m in range(int(hours * 60))
        ]
    )
    return p


def layout(page, chart):
    return page.evaluate(
        """id => { const l = document.getElementById(id)._fullLayout;
                   return {y: l.yaxis.range, ytitle: l.yaxis.title.text, xtitle: l.xaxis.title.text,
                           x: l.xaxis.range, ticks: l.yaxis.ticktext || null,
                           y2title: l.yaxis2 ? l.yaxis2.title.text : null,
                           notes: (l.annotations || []).map(a => a.text),
                           traces: document.getElementById(id).data.map(t => t.name)}; }""",
        f"chart-{chart}",
    )


def wait_loaded(page, range_name):
    page.wait_for_function("r => document.body.dataset.loadedRange === r", arg=range_name)


@pytest.mark.django_db(transaction=True)
def test_a_new_york_operator_picks_the_last_local_hour_sees_its_data_and_can_share_it(ny_page, live_server):
    page = ny_page
    p = pipeline_with_history("orders", hours=3, function_name="orders-consumer")
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dashboard/")
    wait_loaded(page, "6h")

    local_now = datetime.now(ZoneInfo(NEW_YORK))
    start, end = (local_now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), local_now.strftime("%Y-%m-%dT%H:%M")
    page.fill("#ob-start", start)
    page.fill("#ob-end", end)
    page.click("#ob-ranges button[data-range='custom']")
    page.wait_for_function("() => document.body.dataset.loadedQuery && document.body.dataset.loadedRange === 'custom'")
    assert page.inner_text("#ob-range-error") == ""
    assert int(page.get_attribute("#chart-backlog", "data-points")) >= 50, "the last local hour has data"

    # Shown in the browser's zone, and said so.
    zone = page.inner_text("#ob-zone")
    assert NEW_YORK in zone and re.search("UTC−[45]", zone), zone
    chart = layout(page, "backlog")
    assert NEW_YORK in chart["xtitle"] and re.search("UTC−[45]", chart["xtitle"])
    assert chart["x"][1].startswith(local_now.strftime("%Y-%m-%d %H")), "the axis reads local wall-clock time"
    page.screenshot(path=str(SHOTS / "pipeline-new-york-custom.png"), full_page=True)

    # The address holds the range, with its offset: a reload (or a colleague) gets the same range.
    shared = page.url
    assert "range=custom" in shared and re.search(r"start=[^&]*(-0[45]%3A00|-0[45]:00)", shared), shared
    page.reload()
    wait_loaded(page, "custom")
    assert page.url == shared
    assert (page.input_value("#ob-start"), page.input_value("#ob-end")) == (start, end)
    assert int(page.get_attribute("#chart-backlog", "data-points")) >= 50

    # Named ranges are addresses too.
    page.click("#ob-ranges button[data-range='24h']")
    wait_loaded(page, "24h")
    assert "range=24h" in page.url and "start=" not in page.url
    page.go_back()
    wait_loaded(page, "custom")
    assert page.input_value("#ob-start") == start
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_the_charts_scale_to_what_matters_and_label_their_axes(ny_page, live_server):
    page = ny_page
    p = pipeline_with_history("billing", hours=4, function_name="billing-consumer", maximum_concurrency=5)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dashboard/")
    # Four hours of history open on the 6 h range, not a 24 h view squeezing it into a sixth.
    wait_loaded(page, "6h")
    assert "range=6h" in page.url

    age = layout(page, "age")
    assert 900 <= age["y"][1] < FOUR_DAYS / 10, f"the y axis stops near the data and the SLA: {age['y']}"
    assert "retention" not in age["traces"]
    assert any("retention 4.0 d" in n and "off scale" in n for n in age["notes"]), age["notes"]
    assert age["ticks"] and all(re.fullmatch(r"0|[\d.]+ (s|min|h|d)", t) for t in age["ticks"]), age["ticks"]
    assert age["ytitle"]

    for chart in ("backlog", "age", "throughput", "lambda", "duration"):
        got = layout(page, chart)
        assert got["ytitle"] and NEW_YORK in got["xtitle"], (chart, got)
    assert page.locator("#chart-api").count() == 0, "no API: no empty API chart"

    # The right-hand axis: whole numbers for a concurrency, inside the chart's box.
    lam = page.evaluate(
        """() => { const el = document.getElementById('chart-lambda');
                   const box = el.getBoundingClientRect();
                   const labels = [...el.querySelectorAll('.yaxislayer-above .y2tick text, .overaxes-above .y2tick text')];
                   return {box: box.right, right: Math.max(...labels.map(t => t.getBoundingClientRect().right)),
                           ticks: labels.map(t => t.textContent)}; }"""
    )
    assert lam["ticks"] and all(re.fullmatch(r"\d+", t) for t in lam["ticks"]), lam["ticks"]
    assert lam["right"] <= lam["box"], lam
    assert layout(page, "lambda")["y2title"]
    assert not errors, errors
    page.screenshot(path=str(SHOTS / "pipeline-scaled.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_the_overview_and_a_pipeline_page_fit_a_phone(ny_page, live_server):
    page = ny_page
    at = now()
    account = AwsAccount.objects.create(name="production-eu-west-1", region="eu-west-1")
    busy = pipeline_with_history(
        "checkout-payment-authorisations",
        hours=4,
        account=account,
        function_name="checkout-consumer",
        dlq_url="http://h/123456789012/checkout-dlq",
        dlq_depth=12,
        backlog=9000,
    )
    MetricSample.objects.filter(pipeline=busy, minute__gte=at - timedelta(minutes=10)).update(visible=9000)
    pipeline_with_history("orders", hours=30, account=account, function_name="orders-consumer")
    pipeline_with_history("bare", hours=1, account=account)
    pipes = list(Pipeline.objects.all())
    recent = history.refresh(pipes, at)
    for source in (rules.FAST, rules.METRICS):
        evaluate.evaluate(pipes, at, recent, source)
    retention.rollup_range(at - timedelta(days=2), at)
    retention.refresh_sparklines(at)

    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/")
    page.screenshot(path=str(SHOTS / "overview-1440.png"), full_page=True)
    spark = page.locator("tr[data-pipeline='checkout-payment-authorisations'] svg.ob-spark")
    assert "last 4 h" in spark.get_attribute("aria-label")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/admin/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    first = page.locator("#ob-rows tr").first
    assert "checkout-payment-authorisations" in first.inner_text()
    assert first.bounding_box()["width"] <= 390
    ack = page.locator("#ob-incidents button", has_text="Acknowledge").first
    box = ack.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.screenshot(path=str(SHOTS / "overview-390.png"), full_page=True)

    page.click("#ob-rows >> text=checkout-payment-authorisations")
    wait_loaded(page, "6h")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "pipeline-390.png"), full_page=True)
