"""The trace's DLQ search: the whole DLQ is examined up to a cap, the verdict never claims an absence
the search did not establish, all-pipelines lookups search DLQs too, and lookups run only on a POST."""

import uuid

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from pipelines import access as permissions
from pipelines import aws
from pipelines.models import Pipeline, Team, TraceLookup
from tests.redrive_support import counts, fill
from tests.trace.test_trace import NOW_MS, access, client_for, invocation, run, staff, text


@pytest.fixture
def orders(register):
    return register("orders", api=True)


def failed_three_times(target, p, rid):
    """The issue's request: accepted by the API, then three failed attempts (maxReceiveCount 3)."""
    access(target, p, rid)
    for n in range(3):
        invocation(target, p, rid, f"m-{rid[:8]}", ok=False, at_ms=NOW_MS - 50_000 + n * 5000)


def dead_letter(target, p, rid):
    """The request's message, in the pipeline's DLQ (its request id in the request-id attribute)."""
    aws.client(target, "sqs").send_message(
        QueueUrl=p.dlq_url,
        MessageBody='{"poison": true}',
        MessageAttributes={p.request_id_attribute: {"DataType": "String", "StringValue": rid}},
    )


def test_it_finds_a_request_that_is_not_among_the_first_100_dlq_messages(orders, target):
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    fill(target, orders.dlq_url, 120)  # received before the traced message
    dead_letter(target, orders, rid)
    result = run(rid, [orders])
    assert result["verdict"] == "dlq", result["headline"]
    assert result["headline"] == "In the dead-letter queue after 3 failed attempt(s)."
    searched = result["dlqs"][0]
    assert (searched["examined"], searched["complete"]) == (121, True)
    # The search left the DLQ as it found it: every message visible again, none consumed.
    assert counts(target, orders.dlq_url) == {"visible": 121, "in_flight": 0, "delayed": 0}


def test_it_says_not_in_the_dlq_only_after_examining_all_of_it(orders, target):
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    fill(target, orders.dlq_url, 30)
    result = run(rid, [orders])
    assert result["verdict"] == "failed"
    assert "it is not in the DLQ: all 30 message(s) there were examined" in result["headline"]


def test_it_says_unknown_when_the_dlq_holds_more_than_the_cap(orders, target, settings):
    settings.TRACE_DLQ_SCAN_MAX = 40
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    fill(target, orders.dlq_url, 60)
    result = run(rid, [orders])
    assert result["verdict"] == "dlq_unknown"
    assert "not in the DLQ" not in result["headline"]
    assert "whether it is in the DLQ is unknown" in result["headline"]
    assert "not among the 40 message(s) examined" in result["headline"]
    assert "of about 60" in result["headline"] and "cap of 40 per lookup" in result["headline"]
    searched = result["dlqs"][0]
    assert (searched["examined"], searched["complete"], searched["depth"]) == (40, False, 60)
    assert counts(target, orders.dlq_url) == {"visible": 60, "in_flight": 0, "delayed": 0}


def test_it_says_unknown_while_another_reader_holds_dlq_messages(orders, target):
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    fill(target, orders.dlq_url, 5)
    aws.client(target, "sqs").receive_message(QueueUrl=orders.dlq_url, MaxNumberOfMessages=2, VisibilityTimeout=120)
    result = run(rid, [orders])
    assert result["verdict"] == "dlq_unknown"
    assert "2 message(s) were in flight" in result["headline"]
    assert result["dlqs"][0]["examined"] == 3


def test_it_says_unknown_when_the_dlq_cannot_be_read(orders, target):
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    aws.client(target, "sqs").delete_queue(QueueUrl=orders.dlq_url)
    result = run(rid, [orders])
    assert result["verdict"] == "dlq_unknown"
    assert "No queue exists at" in result["dlqs"][0]["error"]
    assert "the DLQ could not be read" in result["headline"]


def test_it_searches_every_dlq_when_all_pipelines_are_chosen(orders, register, target):
    billing = register("billing", api=True)
    rid = str(uuid.uuid4())  # in no log group: its logs have expired, say
    fill(target, billing.dlq_url, 3)
    dead_letter(target, billing, rid)
    result = run(rid, [orders, billing])
    assert result["verdict"] == "dlq", result["headline"]
    found = [e for e in result["timeline"] if e["kind"] == "dlq"]
    assert [(e["pipeline"], e["request_id"]) for e in found] == [("billing", rid)]
    assert [(d["pipeline"], d["examined"], d["complete"]) for d in result["dlqs"]] == [
        ("orders", 0, True),
        ("billing", 4, True),
    ]


def test_it_shares_the_cap_among_dlqs_starting_with_the_pipelines_whose_logs_name_the_id(
    orders, register, target, settings
):
    settings.TRACE_DLQ_SCAN_MAX = 30
    billing = register("billing", api=True)
    rid = str(uuid.uuid4())
    failed_three_times(target, billing, rid)
    fill(target, orders.dlq_url, 40)
    fill(target, billing.dlq_url, 10)
    result = run(rid, [orders, billing])
    assert [(d["pipeline"], d["examined"], d["complete"]) for d in result["dlqs"]] == [
        ("billing", 10, True),
        ("orders", 20, False),
    ]
    # The failed attempts were billing's: its DLQ, searched in full, is the one that could hold it.
    assert result["verdict"] == "failed"
    assert "it is not in the DLQ: all 10 message(s) there were examined" in result["headline"]


def test_it_reports_the_dlqs_it_had_no_budget_left_for(orders, register, target, settings):
    settings.TRACE_DLQ_SCAN_MAX = 10
    billing = register("billing", api=True)
    fill(target, orders.dlq_url, 10)
    result = run("nothing-logged-42", [orders, billing])
    assert [(d["pipeline"], d["examined"], d["searched"]) for d in result["dlqs"]] == [
        ("orders", 10, True),
        ("billing", 0, False),
    ]
    assert result["verdict"] == "not_found"
    assert "whether it is in a DLQ is unknown" in result["headline"]


# --- the page ------------------------------------------------------------------------------------------


def test_it_runs_no_lookup_on_a_get_and_fills_the_form_instead(orders, monkeypatch):
    monkeypatch.setattr(aws, "filter_log_events", lambda *a, **k: pytest.fail("AWS was called"))
    monkeypatch.setattr(aws, "receive_messages", lambda *a, **k: pytest.fail("the DLQ was received from"))
    page = client_for(staff("tracer", "lookup_trace")).get(
        reverse("admin:trace"), {"id": "req-00042", "pipeline": orders.pk, "hours": 48}
    )
    body = text(page)
    assert page.status_code == 200 and TraceLookup.objects.count() == 0
    assert 'value="req-00042"' in body and 'value="48"' in body
    assert f'<option value="{orders.pk}" selected>' in body


def test_it_runs_a_posted_lookup_and_states_the_dlq_cap_on_the_page(orders, target, settings):
    settings.TRACE_DLQ_SCAN_MAX = 40
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    fill(target, orders.dlq_url, 60)
    c = client_for(staff("tracer", "lookup_trace", "peek_dlq"))
    res = c.post(reverse("admin:trace"), {"id": rid, "pipeline": orders.pk, "hours": 24})
    entry = TraceLookup.objects.get()
    assert res.status_code == 302 and res["Location"] == f"{reverse('admin:trace')}?lookup={entry.pk}"
    assert entry.verdict == "dlq_unknown"
    body = text(c.get(res["Location"]))
    assert "Failed; DLQ unknown" in body and "whether it is in the DLQ is unknown" in body
    assert "40 of about 60 message(s) examined" in body
    assert "at most 40 DLQ message(s) per lookup" in body
    assert TraceLookup.objects.count() == 1  # showing a stored lookup runs nothing


def test_it_shows_a_stored_lookup_only_to_its_owner_or_those_who_may_view_lookups(orders):
    owner = client_for(staff("tracer", "lookup_trace"))
    res = owner.post(reverse("admin:trace"), {"id": "nothing-here", "pipeline": orders.pk, "hours": 24})
    assert res.status_code == 302
    assert client_for(staff("other", "lookup_trace")).get(res["Location"]).status_code == 404  # as if none
    assert client_for(staff("auditor", "lookup_trace", "view_tracelookup")).get(res["Location"]).status_code == 200


def test_a_stored_lookup_is_not_found_once_its_owner_may_no_longer_trace_the_pipeline(orders):
    tracers = Team.objects.create(name="tracers", capabilities=["view", "trace"])
    tracers.pipelines.add(orders)
    user = User.objects.create_user("tina", password="pw-for-tests-1", is_staff=True)
    tracers.members.add(user)
    client = client_for(user)
    res = client.post(reverse("admin:trace"), {"id": "nothing-here", "pipeline": orders.pk, "hours": 24})
    assert client.get(res["Location"]).status_code == 200
    tracers.pipelines.remove(orders)
    permissions.forget(user)
    tracers.pipelines.add(Pipeline.objects.create(account=orders.account, name="elsewhere", queue_url="https://x/1/q"))
    assert client_for(user).get(res["Location"]).status_code == 404
