"""In a real headless Chromium: triage a DLQ holding three kinds of failure, then redrive one group.

The DLQ is filled with messages that failed three ways, and the consumer's log with the lines the
demo's consumer writes for them. The operator presses Scan, watches the progress, reads the groups,
opens one group's redrive, runs the dry run and then the real redrive; the emulator must then hold
exactly that group's messages in the source queue and the others still in the DLQ.

The scan and the redrive run in the test's own thread (as a worker would run them) while the page
polls their progress. Progress requests are routed through the test, so the page and the worker
never use the test database at the same moment (a live server on SQLite shares one connection).
"""

import json
import random
import re
import time

import pytest

from opsboard_demo.simulator import POISON_FAILURES
from pipelines import aws, jobs
from pipelines.dlq import runner, triage
from tests.browser import SHOTS, browser_test, log_in
from tests.redrive_support import counts, read_all

pytestmark = browser_test

#: kind of failure -> how many messages failed that way.
KINDS = {"missing_customer": 12, "inventory_timeout": 7, "negative_amount": 5}


def fill_failures(target, p) -> dict[str, set[str]]:
    """Send the failed messages to the DLQ and log one failure (and its traceback) per message in the
    consumer's log, as the demo's consumer writes them. Returns the message ids of each kind."""
    sqs, logs = aws.client(target, "sqs"), aws.client(target, "logs")
    rng = random.Random(7)
    ids: dict[str, set[str]] = {kind: set() for kind in KINDS}
    lines = []
    n = 0
    for kind, count in KINDS.items():
        for _ in range(count):
            body = {"requestId": f"req-{n:04d}", "orderId": 10_000 + n, "amount": -n, "poison": kind}
            sent = sqs.send_message(
                QueueUrl=p.dlq_url,
                MessageBody=json.dumps(body),
                MessageAttributes={"requestId": {"DataType": "String", "StringValue": body["requestId"]}},
            )
            ids[kind].add(sent["MessageId"])
            fields, traceback = POISON_FAILURES[kind](rng, body)
            record = {"level": "ERROR", "message": "message failed", "correlation_id": body["requestId"]}
            record.update(messageId=sent["MessageId"], receiveCount=3, **fields)
            lines.append(json.dumps(record))
            if traceback:
                lines.append(traceback)
            n += 1
    stream = "2026/12/05/[$LATEST]0123abcd"
    logs.create_log_stream(logGroupName=p.consumer_log_group, logStreamName=stream)
    now_ms = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=p.consumer_log_group,
        logStreamName=stream,
        logEvents=[{"timestamp": now_ms + i, "message": line} for i, line in enumerate(lines)],
    )
    return ids


def group_row(page, word: str):
    return page.locator("#tr-groups tbody tr", has_text=word)


def run_queued(queued: list, name: str, run) -> None:
    """Run the one job of this name the page queued, as a worker would."""
    mine = [args for job, args in queued if job == name]
    assert len(mine) == 1, queued
    queued.clear()
    run(*mine[0])


@pytest.mark.django_db(transaction=True)
def test_it_triages_a_dlq_and_redrives_one_group_from_the_browser(page, live_server, register, target, monkeypatch):
    p = register("orders")
    ids = fill_failures(target, p)
    queued = []
    monkeypatch.setattr(jobs, "submit", lambda name, *args: queued.append((name, args)))  # the worker is this test
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dlq/")
    page.click("#rd-triage")
    page.wait_for_selector("#tr-never")
    page.screenshot(path=str(SHOTS / "triage-empty.png"), full_page=True)

    page.click("#tr-scan")
    page.wait_for_selector("#tr-progress")
    assert page.inner_text("#tr-status") == "Pending"
    page.screenshot(path=str(SHOTS / "triage-pending.png"), full_page=True)

    # Progress polls wait for the test to let them through (see the module docstring).
    page.route("**/progress.json", lambda route: route.continue_())
    seen = []
    real_save = triage._Progress.save

    def save_and_look(beat, examined=None, **fields):
        real_save(beat, examined, **fields)
        if examined == 24 and not seen:  # every message received; the log is read next
            page.wait_for_function("() => document.getElementById('tr-examined').textContent === '24'")
            seen.append((page.inner_text("#tr-status"), page.inner_text("#tr-percent")))
            page.wait_for_timeout(600)  # the bar's width transition
            page.screenshot(path=str(SHOTS / "triage-progress.png"), full_page=True)

    monkeypatch.setattr(triage._Progress, "save", save_and_look)
    run_queued(queued, jobs.RUN_TRIAGE_SCAN, triage.run_scan)
    assert seen == [("Scanning", "99%")]

    page.wait_for_selector("#tr-groups")  # the page reloaded once the scan was done
    assert "24 of 24" in page.inner_text("#tr-examined-of")
    assert page.locator("#tr-groups tbody tr").count() == 3
    for word, count in (("customer_id", "12"), ("TimeoutError", "7"), ("negative", "5")):
        assert group_row(page, word).locator(".tr-count").inner_text() == count
    assert "3 causes: KeyError 'customer_id' 50 %" in page.inner_text("#tr-causes")
    page.screenshot(path=str(SHOTS / "triage-groups.png"), full_page=True)

    # The smallest group: a dry run first, then the real redrive.
    card = page.locator(".tr-group", has_text="negative")
    assert "KeyError" not in card.inner_text()
    card.locator(".tr-redrive").click()
    page.wait_for_selector("#rd-search")
    assert page.is_checked("#id_dry_run")
    page.screenshot(path=str(SHOTS / "triage-redrive-confirm.png"), full_page=True)
    page.click("#rd-start")
    page.wait_for_selector("#rd-progress")
    page.route("**/progress/", lambda route: route.continue_())
    run_queued(queued, jobs.RUN_REDRIVE, runner.run_redrive)
    page.wait_for_selector("#rd-progress[data-active=false]")
    page.wait_for_selector("#rd-sample")
    sample = page.inner_text("#rd-sample")
    assert len(re.findall(r"\byes\b", sample)) == 5
    page.screenshot(path=str(SHOTS / "triage-dry-run.png"), full_page=True)
    assert counts(target, p.queue_url)["visible"] == 0 and counts(target, p.dlq_url)["visible"] == 24

    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dlq/triage/")
    page.locator(".tr-group", has_text="negative").locator(".tr-redrive").click()
    page.wait_for_selector("#rd-search")
    page.uncheck("#id_dry_run")
    page.click("#rd-start")
    page.wait_for_selector("#rd-progress")
    run_queued(queued, jobs.RUN_REDRIVE, runner.run_redrive)
    page.wait_for_selector("#rd-progress[data-active=false]")
    assert page.inner_text("#rd-status") == "Completed" and page.inner_text("#rd-moved") == "5"
    page.screenshot(path=str(SHOTS / "triage-redrive-done.png"), full_page=True)

    moved = read_all(target, p.queue_url)
    assert sorted(json.loads(m["Body"])["poison"] for m in moved) == ["negative_amount"] * 5
    left = read_all(target, p.dlq_url)
    assert {m["MessageId"] for m in left} == ids["missing_customer"] | ids["inventory_timeout"]

    page.goto(f"{live_server.url}/admin/pipelines/pipeline/{p.pk}/dashboard/")
    assert "3 causes: KeyError 'customer_id' 50 %" in page.inner_text("#ob-dlq-causes")
    page.screenshot(path=str(SHOTS / "triage-pipeline-page.png"))
