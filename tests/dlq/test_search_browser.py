"""In a real headless Chromium: from the DLQ page to a search, its results, a redrive of what it selects
(a dry run first), and edit & resend of one message."""

import json

import pytest

from pipelines.dlq import service
from tests.browser import SHOTS, browser_test, log_in
from tests.redrive_support import counts, fill, read_all

pytestmark = browser_test


@pytest.mark.django_db(transaction=True)
def test_it_searches_a_dlq_and_carries_the_search_to_a_dry_run_redrive(
    page, live_server, register, target, monkeypatch
):
    from pipelines.models import RedriveTask

    p = register("orders")
    fill(target, p.dlq_url, 30)
    monkeypatch.setattr(service, "enqueue", lambda task_id: None)  # no worker: the task row is what is checked
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dlq/")
    page.click("#rd-search-link")
    page.wait_for_selector("#rd-search-form")
    page.fill("#id_attribute", "attempt")
    page.fill("#id_value", "3")
    page.fill("#id_body", '"order": 1')
    page.click("#rd-search-run")
    page.wait_for_selector("#rd-search-counts")
    # Orders 3, 7, … have attempt 3; of those, bodies containing '"order": 1' are 11, 15 and 19.
    assert page.inner_text("#rd-matched") == "3" and page.inner_text("#rd-examined") == "30"
    assert "The whole DLQ was examined." in page.inner_text("#rd-coverage")
    page.screenshot(path=str(SHOTS / "dlq-search.png"), full_page=True)

    page.click("#rd-search-redrive")
    page.wait_for_selector("#rd-search")
    assert "attribute attempt = '3'; body contains '\"order\": 1'" in page.inner_text("#rd-search")
    assert page.is_checked("#id_dry_run")
    page.screenshot(path=str(SHOTS / "dlq-search-redrive.png"), full_page=True)
    page.click("#rd-start")
    page.wait_for_selector("#rd-progress")
    task = RedriveTask.objects.get()
    assert task.dry_run and task.filter_kind == "search" and "body contains" in task.filter_description()


@pytest.mark.django_db(transaction=True)
def test_it_edits_and_resends_a_message_from_the_browser(page, live_server, register, target):
    p = register("orders")
    fill(target, p.dlq_url, 3)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dlq/search/?request_ids=req-00001")
    page.click("#rd-search-run")
    page.click("a.rd-edit")
    page.click("#rd-load")
    page.wait_for_selector("#rd-edit-body")
    body = page.input_value("#rd-edit-body")
    assert body.startswith('{\n  "order": 1,')
    page.fill("#rd-edit-body", body.replace('"note": "ok"', '"note": "fixed"'))
    page.screenshot(path=str(SHOTS / "dlq-edit.png"), full_page=True)
    page.click("#rd-send")
    page.wait_for_selector(".messagelist")
    assert "Sent the edited message to the source queue" in page.inner_text(".messagelist")
    [copy] = read_all(target, p.queue_url)
    assert json.loads(copy["Body"])["note"] == "fixed" and counts(target, p.dlq_url)["visible"] == 2
