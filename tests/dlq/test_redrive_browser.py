"""In a real headless Chromium: open a DLQ, peek, redrive, confirm, watch the progress bar, see it done.

The redrive runs in the test's own thread (as a worker would run it) while the page polls its
progress. Progress requests are routed through the test, so the page and the worker never use the
test database at the same moment (a live server on SQLite shares one connection between threads).
"""

import pytest

from pipelines.dlq import runner, service, worker
from tests.browser import SHOTS, browser_test, log_in
from tests.redrive_support import counts, fill

pytestmark = browser_test


@pytest.mark.django_db(transaction=True)
def test_it_redrives_a_dlq_from_the_browser_with_live_progress(page, live_server, register, target, monkeypatch):
    from pipelines.models import RedriveTask

    p = register("orders")
    fill(target, p.dlq_url, 40)
    queued = []
    monkeypatch.setattr(service, "enqueue", queued.append)  # the "worker" below is this test
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dlq/")
    assert "40 visible" in page.inner_text(".rd-box")
    page.screenshot(path=str(SHOTS / "redrive-dlq.png"), full_page=True)
    page.fill("#rd-count", "5")
    page.click("input[name=peek]")
    page.wait_for_selector("#rd-messages")
    assert page.locator("#rd-messages tbody tr").count() == 5
    assert "req-00000" in page.inner_text("#rd-messages") and '"order": 0' in page.inner_text("#rd-messages")
    page.screenshot(path=str(SHOTS / "redrive-peek.png"), full_page=True)

    page.click("#rd-redrive")
    page.wait_for_selector("#rd-confirm")
    assert "The source queue: orders" in page.inner_text("#rd-confirm")
    page.screenshot(path=str(SHOTS / "redrive-confirm.png"), full_page=True)
    page.dblclick("#rd-start")  # an impatient operator: still one task
    page.wait_for_selector("#rd-progress")
    assert RedriveTask.objects.count() == 1 and len(queued) == 1
    assert page.inner_text("#rd-status") == "Pending"

    # Progress polls wait for the test to let them through (see the module docstring).
    page.route("**/progress/", lambda route: route.continue_())
    shown = []
    real_checkpoint = worker.Run.checkpoint

    def checkpoint_and_look(run):
        status = real_checkpoint(run)
        if run.task.moved == 20 and not shown:
            page.wait_for_function("() => document.getElementById('rd-moved').textContent === '20'")
            shown.append(page.inner_text("#rd-percent"))
            page.wait_for_timeout(600)  # the bar's width transition
            page.screenshot(path=str(SHOTS / "redrive-progress.png"), full_page=True)
        return status

    monkeypatch.setattr(worker.Run, "checkpoint", checkpoint_and_look)
    runner.run_redrive(queued[0])  # as a worker would
    assert shown == ["50%"]

    page.wait_for_selector("text=Done: 40 message(s) moved.")
    page.wait_for_selector("#rd-progress[data-active=false]")
    assert page.inner_text("#rd-status") == "Completed" and page.inner_text("#rd-percent") == "100%"
    page.screenshot(path=str(SHOTS / "redrive-done.png"), full_page=True)
    assert counts(target, p.queue_url)["visible"] == 40 and counts(target, p.dlq_url)["visible"] == 0

    page.click("text=Back to the DLQ")
    assert "Completed" in page.inner_text("#rd-history")
    page.screenshot(path=str(SHOTS / "redrive-history.png"), full_page=True)
