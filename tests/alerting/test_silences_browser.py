"""In a real headless Chromium: silence an open incident from the incident list, give the reason, and
see the overview's strip say it is silenced — then expire the silence."""

import pytest

from pipelines.clock import now
from pipelines.models import AwsAccount, Incident, Pipeline, RuleKind, Severity, Silence
from tests.browser import SHOTS, browser_test, log_in

pytestmark = browser_test


@pytest.mark.django_db(transaction=True)
def test_an_operator_silences_an_incident_and_the_overview_says_so(page, live_server):
    at = now()
    account = AwsAccount.objects.create(name="prod", region="us-east-1")
    orders = Pipeline.objects.create(
        name="orders", account=account, queue_url="http://h/123456789012/orders", last_sync_at=at, backlog=5000
    )
    incident = Incident.objects.create(
        pipeline=orders,
        rule=RuleKind.BACKLOG,
        severity=Severity.CRITICAL,
        peak_severity=Severity.CRITICAL,
        summary="backlog 5,000 above 1,000",
        value=5000,
        threshold=1000,
        opened_at=at,
        last_seen_at=at,
    )
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/pipelines/incident/")
    page.check(f"input[name=_selected_action][value='{incident.pk}']")
    page.select_option("select[name=action]", "silence_4h")
    page.click("button[name=index]")
    page.wait_for_selector("#silence_form")
    assert page.input_value("#id_rule") == RuleKind.BACKLOG
    page.click("input[name=_save]")  # no reason yet: the form says what is missing
    assert "Give a reason" in page.inner_text(".errorlist")
    page.fill("#id_reason", "deploying the fix")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    silence = Silence.objects.get()
    assert (silence.pipeline_id, silence.rule, silence.created_by) == (orders.pk, RuleKind.BACKLOG, "ops")

    page.goto(f"{live_server.url}/admin/")
    strip = page.inner_text("#ob-incidents")
    assert "silenced until" in strip and "deploying the fix" in strip and "by ops" in strip
    page.screenshot(path=str(SHOTS / "silenced-overview.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/pipelines/silence/")
    page.check(f"input[name=_selected_action][value='{silence.pk}']")
    page.select_option("select[name=action]", "expire_now")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "Expired 1 silence(s)" in page.inner_text(".messagelist")
    page.goto(f"{live_server.url}/admin/")
    assert "silenced until" not in page.inner_text("#ob-incidents")
