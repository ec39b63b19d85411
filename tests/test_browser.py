"""In a real headless Chromium: log in, see pipelines with their health, open one, add one with a bad URL."""
import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed "
                                 "(make test installs it when run as root)")]


@pytest.fixture
def page(live_server):
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        yield pg
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def login(page, live_server):
    from django.contrib.auth.models import User

    User.objects.create_superuser("ops", "ops@example.com", "browser-test-pw-1")
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "browser-test-pw-1")
    page.click("input[type=submit]")


@pytest.mark.django_db(transaction=True)
def test_an_operator_sees_pipelines_and_their_health(page, live_server, register, target):
    from pipelines import aws, collect
    from pipelines.models import Pipeline

    p = register("orders", api=True)
    register("bare", dlq=False, consumer=False)
    for _ in range(3):
        aws.client(target, "sqs").send_message(QueueUrl=p.dlq_url, MessageBody="failed")
    collect.sync_pipelines(list(Pipeline.objects.select_related("account")))
    login(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    orders = page.locator("#result_list tbody tr", has_text="orders")
    assert orders.locator(".ob-badge").inner_text() == "Warning"
    assert "3 message(s) in the DLQ" in orders.inner_text()
    page.screenshot(path=str(SHOTS / "pipelines.png"), full_page=True)
    page.click("text=orders")
    page.wait_for_selector("text=Discovered from AWS")
    body = page.inner_text("body")
    assert "orders-consumer" in body and "orders-api" in body and "/month" in body
    page.screenshot(path=str(SHOTS / "pipeline.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_a_bad_queue_url_shows_a_form_error_not_a_crash(page, live_server, account, emulator):
    login(page, live_server)
    page.goto(f"{live_server.url}/admin/pipelines/pipeline/add/")
    page.fill("#id_name", "ghost")
    page.select_option("#id_account", label=str(account))
    page.fill("#id_queue_url", f"{emulator.url}/123456789012/ghost")
    page.click("input[name=_save]")
    error = page.locator(".errorlist").first.inner_text()
    assert "No queue exists at" in error
    page.screenshot(path=str(SHOTS / "bad-url.png"), full_page=True)
