"""The Content-Security-Policy: sent on every page, and every page works under it in Chromium.

Scripts come only from opsboard's static files, so an injected inline script does not run; the
pages themselves (the overview's refresh and account filter, the charts, the DLQ page's peek, the
admin's own forms, the trace form) run without a single violation.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from pipelines.alerting import history
from tests.browser import SHOTS, browser, log_in
from tests.redrive_support import fill

#: Records every CSP violation the page reports, before any of the page's own scripts run.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});
"""


@pytest.mark.django_db
def test_every_response_carries_the_policy(client):
    User.objects.create_superuser("ops", "ops@example.com", "pw-123456789")
    client.force_login(User.objects.get(username="ops"))
    for url in ("/admin/login/", "/admin/", "/admin/pipelines/pipeline/", "/admin/trace/"):
        policy = client.get(url).headers.get("Content-Security-Policy", "")
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives.get("script-src") == "'self'", url
        assert directives.get("object-src") == "'none'" and directives.get("frame-ancestors") == "'none'", url
        assert "unsafe-inline" not in directives["script-src"] and "unsafe-eval" not in policy, url


def _history(pipeline, at, minutes=180):
    from pipelines.models import MetricSample

    rows = []
    for m in range(minutes, 0, -1):
        t = (at - timedelta(minutes=m)).replace(second=0, microsecond=0)
        rows.append(
            MetricSample(
                pipeline=pipeline,
                minute=t,
                visible=max(0, 500 - m * 2),
                in_flight=3,
                dlq_visible=2,
                sent=40,
                deleted=38,
                oldest_age=30 + m,
                lambda_invocations=5,
                lambda_errors=1,
                lambda_concurrency=2,
            )
        )
    MetricSample.objects.bulk_create(rows)


@browser
@pytest.mark.django_db(transaction=True)
def test_the_pages_work_under_the_policy_in_chromium(page, live_server, register, target):
    from pipelines.clock import now
    from pipelines.collection import cycles
    from pipelines.models import Pipeline

    p = register("orders")
    fill(target, p.dlq_url, 3)
    cycles.sync_pipelines(list(Pipeline.objects.select_related("account")))
    p.refresh_from_db()
    _history(p, now())
    history.refresh([p], now())
    page.add_init_script(WATCH)
    log_in(page, live_server)

    def violations():
        return page.evaluate("window.__csp")

    # The overview: its refresh script runs, and choosing an account submits the filter.
    page.goto(f"{live_server.url}/admin/")
    page.select_option("select[name=account]", label=p.account.name)
    page.wait_for_url(f"**account={p.account.pk}*")
    assert violations() == []

    # The pipeline page: plotly draws every chart.
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dashboard/")
    page.wait_for_selector("#chart-backlog[data-points]")
    page.wait_for_selector("#chart-backlog .scatterlayer .trace")
    page.click("#ob-ranges button[data-range='1h']")
    page.wait_for_function("() => document.body.dataset.loadedRange === '1h'")
    page.screenshot(path=str(SHOTS / "csp-pipeline.png"), full_page=True)
    assert violations() == []

    # The DLQ page: peek (its script fills the count), then the redrive confirmation.
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dlq/")
    page.fill("#rd-count", "3")
    page.click("input[name=peek]")
    page.wait_for_selector("#rd-messages")
    page.click("#rd-redrive")
    page.wait_for_selector("#rd-confirm")
    assert violations() == []

    # The admin's own scripts: a change form (its inlines and widgets) and the trace form.
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/change/")
    page.wait_for_selector("#pipeline_form")
    page.goto(f"{live_server.url}/admin/trace/")
    page.wait_for_selector("form")
    assert violations() == []

    # An injected inline script is refused, and the refusal is reported.
    ran = page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
        " document.body.appendChild(s); return window.__injected === 1; }"
    )
    assert ran is False
    page.wait_for_function("() => window.__csp.length > 0")
    assert violations()[0].startswith("script-src")
