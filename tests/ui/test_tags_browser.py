"""In a real headless Chromium: narrow the pipeline list by group, then type a tag in the filter's box
and press Enter; the group filter stays applied."""

import pytest

from pipelines.models import AwsAccount, Pipeline
from tests.browser import SHOTS, browser_test, log_in

pytestmark = browser_test
URL = "http://h/123456789012/"


@pytest.mark.django_db(transaction=True)
def test_an_operator_narrows_the_pipeline_list_by_group_and_a_typed_tag(page, live_server):
    account = AwsAccount.objects.create(name="prod", region="us-east-1")
    for name, group, tags in [
        ("orders", "payments", {"env": "prod"}),
        ("refunds", "payments", {"env": "staging"}),
        ("index", "search", {"env": "prod"}),
    ]:
        Pipeline.objects.create(name=name, account=account, queue_url=URL + name, group=group, tags=tags)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/")

    page.click("details[data-filter-title='group'] a:text('payments (2)')")
    page.wait_for_function("() => new URLSearchParams(location.search).get('group') === 'payments'")
    page.fill("details[data-filter-title='tag'] input[name=tag]", "env=prod")
    page.press("details[data-filter-title='tag'] input[name=tag]", "Enter")
    page.wait_for_function("() => new URLSearchParams(location.search).get('tag') === 'env=prod'")

    page.screenshot(path=str(SHOTS / "pipeline-list-group-tag.png"), full_page=True)
    names = page.locator("#result_list tbody tr td.field-name, #result_list tbody tr th.field-name").all_inner_texts()
    assert names == ["orders"]
    assert "group=payments" in page.url
