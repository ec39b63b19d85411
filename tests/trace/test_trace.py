"""Per-request trace: one id followed through the access log, the consumer's invocations and the DLQ,
with log events seeded by the tests in the emulator (plus a run of the demo's simulator)."""

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from opsboard_demo.scenarios import scenario_named
from opsboard_demo.simulator import Simulator
from pipelines import aws
from pipelines.models import Pipeline, TraceLookup
from pipelines.registry.discovery import discover
from pipelines.trace import logs, lookup
from pipelines.trace.views import run_lookup

NOW_MS = int(time.time() * 1000)


def put(target, group, stream, lines, at_ms):
    """Write `lines` to a new stream of `group`, one millisecond apart from `at_ms`."""
    logs = aws.client(target, "logs")
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": at_ms + i, "message": m} for i, m in enumerate(lines)],
    )


def access(target, p, rid, status=200, latency=45, at_ms=None):
    line = json.dumps(
        {"requestId": rid, "status": status, "responseLatency": latency, "httpMethod": "POST", "resourcePath": "/"}
    )
    put(target, p.api_log_group, f"access-{rid[:8]}", [line], at_ms or NOW_MS - 60_000)


def invocation(target, p, rid, message_id, ok=True, at_ms=None, others=0):
    """One Lambda invocation handling `rid` (and `others` unrelated records); returns its id."""
    inv = str(uuid.uuid4())
    record = {
        "level": "INFO" if ok else "ERROR",
        "message": "processed" if ok else "message failed",
        "correlation_id": rid,
        "messageId": message_id,
    }
    lines = [f"START RequestId: {inv} Version: $LATEST"]
    lines += [json.dumps({"level": "INFO", "correlation_id": str(uuid.uuid4())}) for _ in range(others)]
    lines.append(json.dumps(record))
    if not ok:
        lines.append(
            'Traceback (most recent call last):\n  File "/var/task/handler.py", line 12, in handler\n'
            "ValueError: order payload failed validation"
        )
    lines += [
        f"END RequestId: {inv}",
        (
            f"REPORT RequestId: {inv}\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\t"
            "Max Memory Used: 81 MB"
        ),
    ]
    put(target, p.consumer_log_group, f"2026/01/01/[$LATEST]{inv[:8]}", lines, at_ms or NOW_MS - 50_000)
    return inv


def window():
    end = datetime.now(UTC) + timedelta(minutes=1)
    return end - timedelta(hours=24), end


def run(ident, pipelines, **kw):
    return lookup.lookup(ident, pipelines, *window(), **kw)


@pytest.fixture
def orders(register):
    return register("orders", api=True)


def staff(username, *perms):
    user = User.objects.create_user(username, f"{username}@example.com", "pw-for-tests-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="pipelines", codename__in=perms))
    return user


def client_for(user):
    c = Client()
    c.force_login(user)
    return c


def text(response):
    return re.sub(r"\s+", " ", response.content.decode())


# --- pure parsing --------------------------------------------------------------------------------------


def test_it_accepts_ids_of_the_usual_shapes():
    for ok in (str(uuid.uuid4()), "a1b2-c3.d4_e5:f6", "x" * 128):
        assert logs.clean_id(f"  {ok} ") == ok


@pytest.mark.parametrize("bad", ['abc" ?ERROR', "*", "abc def", "{ $.x = 1 }", "[a]", "x" * 129, "", 'a"b', "?x"])
def test_it_rejects_ids_that_could_become_pattern_syntax(bad):
    with pytest.raises(logs.TraceInputError):
        logs.clean_id(bad)


def test_it_parses_lambda_and_access_lines():
    inv = str(uuid.uuid4())
    assert logs.parse_marker(f"START RequestId: {inv} Version: $LATEST") == ("START", inv)
    assert logs.parse_report(f"REPORT RequestId: {inv}\tDuration: 3.25 ms\tMax Memory Used: 70 MB") == {
        "duration_ms": 3.25,
        "memory_mb": 70,
    }
    assert logs.invocation_in_line(f"[ERROR]\t2026-01-01T00:00:00Z\t{inv}\tboom") == inv
    assert logs.parse_access_entry('{"requestId": "r1", "status": 502, "responseLatency": 9}')["status"] == 502
    assert logs.is_error_line('{"level": "ERROR"}') and not logs.is_error_line('{"level": "INFO"}')
    assert logs.console_url("eu-west-1", "/aws/lambda/f") == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#logsV2:log-groups/log-group/%2Faws%2Flambda%2Ff"
    )


# --- lookups against the emulator ----------------------------------------------------------------------


def test_it_traces_a_request_that_succeeded(orders, target):
    rid = str(uuid.uuid4())
    access(target, orders, rid)
    inv = invocation(target, orders, rid, "m-1", others=2)
    result = run(rid, [orders])
    assert result["verdict"] == "processed" and result["retries"] == 0
    kinds = [e["kind"] for e in result["timeline"]]
    assert kinds == ["access", "invocation"]
    api, attempt = result["timeline"]
    assert (api["status"], api["latency_ms"]) == (200, 45)
    assert api["console_url"].endswith(orders.api_log_group.replace("/", "%2F"))
    assert attempt["invocation_id"] == inv and attempt["duration_ms"] == 12.5 and attempt["memory_mb"] == 81
    # The batch's other records are not shown; the invocation's markers are.
    assert [ln["message"].split(" ")[0] for ln in attempt["lines"]] == ["START", '{"level":', "END", "REPORT"]


def test_it_shows_each_retry_as_an_attempt_with_its_traceback(orders, target):
    rid = str(uuid.uuid4())
    access(target, orders, rid)
    first = invocation(target, orders, rid, "m-2", ok=False, at_ms=NOW_MS - 50_000)
    second = invocation(target, orders, rid, "m-2", ok=True, at_ms=NOW_MS - 20_000)
    result = run(rid, [orders])
    assert result["verdict"] == "processed" and result["retries"] == 1
    attempts = [e for e in result["timeline"] if e["kind"] == "invocation"]
    assert [(a["invocation_id"], a["failed"], a["attempt"]) for a in attempts] == [(first, True, 1), (second, False, 2)]
    assert any(ln["message"].startswith("Traceback") and "ValueError" in ln["message"] for ln in attempts[0]["lines"])
    assert result["headline"] == "Processed after 1 retry."


def test_it_finds_a_request_in_the_dlq(orders, target):
    rid = str(uuid.uuid4())
    access(target, orders, rid)
    for n in range(3):
        invocation(target, orders, rid, "m-3", ok=False, at_ms=NOW_MS - 50_000 + n * 5000)
    aws.client(target, "sqs").send_message(
        QueueUrl=orders.dlq_url,
        MessageBody="{}",
        MessageAttributes={orders.request_id_attribute: {"DataType": "String", "StringValue": rid}},
    )
    result = run(rid, [orders])
    assert result["verdict"] == "dlq" and result["retries"] == 2
    assert result["headline"] == "In the dead-letter queue after 3 failed attempt(s)."
    dlq = [e for e in result["timeline"] if e["kind"] == "dlq"]
    assert len(dlq) == 1 and dlq[0]["request_id"] == rid
    assert result["dlqs"][0]["examined"] == 1
    # Peeking released the message: it is still in the DLQ.
    assert aws.queue_counts(target, orders.dlq_url)["visible"] == 1


def test_it_answers_not_found_with_what_was_searched(orders, register, target, monkeypatch):
    other = register("billing", api=True)
    sent = []
    real = aws.filter_log_events
    monkeypatch.setattr(
        aws, "filter_log_events", lambda t, g, pattern, *a, **k: sent.append(pattern) or real(t, g, pattern, *a, **k)
    )
    ident = "no-such-request-42"
    result = run(ident, [orders, other])
    assert result["verdict"] == "not_found" and result["timeline"] == []
    assert {s["group"] for s in result["sources"]} == {
        orders.api_log_group,
        orders.consumer_log_group,
        other.api_log_group,
        other.consumer_log_group,
    }
    # Every DLQ is searched too, whole, so the answer covers them.
    assert [(d["pipeline"], d["examined"], d["complete"]) for d in result["dlqs"]] == [
        ("orders", 0, True),
        ("billing", 0, True),
    ]
    assert (
        result["headline"]
        == "Not found in the log groups searched, nor in the 2 DLQs: all 0 message(s) there were examined."
    )
    # Every pattern sent to AWS is exactly the quoted id.
    assert sent == [f'"{ident}"'] * 4 and result["log_calls"] == 4


def test_it_shows_an_error_for_a_missing_log_group_and_still_answers_from_the_others(orders, target):
    rid = str(uuid.uuid4())
    invocation(target, orders, rid, "m-4")
    orders.api_log_group = "/aws/apigateway/does-not-exist"
    orders.save()
    result = run(rid, [orders])
    api_src = next(s for s in result["sources"] if s["group"] == orders.api_log_group)
    assert "ResourceNotFoundException" in api_src["error"] or "does not exist" in api_src["error"]
    lambda_src = next(s for s in result["sources"] if s["group"] == orders.consumer_log_group)
    assert lambda_src["error"] == "" and lambda_src["found"] == 1
    assert result["verdict"] == "processed"


def test_it_follows_pages_and_stops_at_the_call_cap(orders, target):
    rid = str(uuid.uuid4())
    lines = [json.dumps({"level": "INFO", "message": f"step {n}", "correlation_id": rid}) for n in range(5)]
    put(target, orders.api_log_group, "access-paged", lines, NOW_MS - 60_000)
    paged = run(rid, [orders], page_size=2)
    src = next(s for s in paged["sources"] if s["group"] == orders.api_log_group)
    assert src["found"] == 5 and paged["log_calls"] == 3 + 1  # three pages, then the consumer group
    assert not paged["truncated"]
    capped = run(rid, [orders], page_size=2, max_calls=2)
    assert capped["truncated"] and capped["log_calls"] == 2


# --- the page ------------------------------------------------------------------------------------------


def test_it_requires_the_lookup_permission(db):
    url = reverse("admin:trace")
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert client_for(staff("viewer", "view_pipeline")).get(url).status_code == 403
    assert client_for(staff("tracer", "lookup_trace")).get(url).status_code == 200


def test_it_rejects_an_injection_attempt_on_the_page_without_calling_aws(orders, monkeypatch):
    monkeypatch.setattr(aws, "filter_log_events", lambda *a, **k: pytest.fail("AWS was called"))
    page = client_for(staff("tracer", "lookup_trace")).post(reverse("admin:trace"), {"id": 'abc" ?ERROR'})
    assert page.status_code == 200
    assert "may contain only letters, digits" in text(page)
    assert TraceLookup.objects.count() == 0


def test_it_stores_each_lookup_and_links_to_rerun_it(orders, target):
    rid = str(uuid.uuid4())
    access(target, orders, rid)
    invocation(target, orders, rid, "m-5")
    user = staff("tracer", "lookup_trace", "peek_dlq", "view_tracelookup")
    c = client_for(user)
    page = c.post(reverse("admin:trace"), {"id": rid, "pipeline": orders.pk, "hours": 24}, follow=True)
    body = text(page)
    assert page.status_code == 200 and "Processed" in body and "console.aws.amazon.com" in body
    assert "Searching is a <strong>receive</strong>" in body  # the pipeline's DLQ is searched
    entry = TraceLookup.objects.get()
    assert (entry.user, entry.ident, entry.pipeline, entry.verdict) == (user, rid, orders, "processed")
    assert entry.calls_made >= 4 and entry.summary["timeline"] and entry.window_hours == 24
    history = text(c.get(reverse("admin:pipelines_tracelookup_changelist")))
    assert "re-run" in history and f"id={rid}" in history


def test_it_says_what_was_searched_when_nothing_is_found_on_the_page(orders):
    page = client_for(staff("tracer", "lookup_trace")).post(reverse("admin:trace"), {"id": "nothing-here"}, follow=True)
    body = text(page)
    assert "Not found" in body and orders.api_log_group in body and orders.consumer_log_group in body
    assert TraceLookup.objects.get().verdict == "not_found"


# --- end to end with the demo's simulator ----------------------------------------------------------


def test_it_traces_a_simulated_request_to_processed(account, target):
    sim = Simulator(target, seed=7)
    s = sim.add("orders", scenario_named("steady"))
    at = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(6):
        sim.step(5, at=at + timedelta(seconds=5 * i))
    found = discover(account.target(), s.res.queue_url, "rest", s.res.api_id, s.res.api_stage)
    p = Pipeline(
        name="orders",
        account=account,
        api_id=s.res.api_id,
        api_kind="rest",
        api_stage=s.res.api_stage,
        api_log_group=s.res.api_log_group,
    )
    p.apply_discovery(found.fields)
    p.save()
    logs = aws.client(target, "logs").filter_log_events(logGroupName=p.api_log_group)["events"]
    rids = [json.loads(e["message"])["requestId"] for e in logs if json.loads(e["message"])["status"] == 200]
    consumer = aws.client(target, "logs").filter_log_events(logGroupName=p.consumer_log_group)["events"]
    handled = [r for r in rids if any(r in e["message"] and '"processed"' in e["message"] for e in consumer)]
    assert handled, "the simulator processed no request"
    entry = run_lookup(None, handled[0], None, 24)
    assert entry.verdict == "processed", entry.summary["headline"]
    kinds = [e["kind"] for e in entry.summary["timeline"]]
    assert kinds[0] == "access" and "invocation" in kinds
