"""DLQ search: what each criterion selects, the search page, and the actions on what a search or a triage
group selects (redrive through the batch engine, deletion, export)."""

import json
import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from pipelines.dlq import peek, selection
from pipelines.dlq.filters import Filter
from pipelines.dlq.queues import RedriveError
from pipelines.dlq.selection import Search, SearchError
from pipelines.models import (
    AuditEntry,
    FilterKind,
    RedriveTask,
    TriageGroup,
    TriageMessage,
    TriageScan,
)
from tests.redrive_support import counts, fill, read_all

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def message(mid="m-1", body='{"order": 1}', sent=T0, receives=1, **attrs) -> dict:
    """A message as ReceiveMessage returns it."""
    return {
        "MessageId": mid,
        "ReceiptHandle": f"rh-{mid}",
        "Body": body,
        "Attributes": {"SentTimestamp": str(int(sent.timestamp() * 1000)), "ApproximateReceiveCount": str(receives)},
        "MessageAttributes": {n: {"DataType": "String", "StringValue": v} for n, v in attrs.items()},
    }


def parse(**params) -> Search:
    return Search.parse(params, "requestId")


# --- pure: parsing and matching ----------------------------------------------------------------------------------

MESSAGES = [
    message("a", '{"error": "timeout"}', T0, 1, requestId="req-1", tenant="acme"),
    message(
        "b", '{"error": "bad card"}', datetime(2026, 12, 5, 13, 0, tzinfo=UTC), 3, requestId="req-2", tenant="acme"
    ),
    message(
        "c", "plain timeout text", datetime(2026, 12, 6, 9, 0, tzinfo=UTC), 5, requestId="req-3", tenant="umbrella"
    ),
]


@pytest.mark.parametrize(
    "params, selected",
    [
        ({"attribute": "tenant", "value": "acme"}, "ab"),
        ({"body": "timeout"}, "ac"),
        ({"message_ids": "c\na"}, "ac"),
        ({"request_ids": "req-2, req-9"}, "b"),
        ({"sent_after": "2026-12-05 13:00"}, "bc"),
        ({"sent_before": "2026-12-05T13:00:00Z"}, "a"),
        ({"sent_after": "2026-12-05", "sent_before": "2026-12-06"}, "ab"),
        ({"min_receives": "3"}, "bc"),
        ({"max_receives": "3"}, "ab"),
        ({"min_receives": "2", "max_receives": "4"}, "b"),
        ({"body": "timeout", "attribute": "tenant", "value": "acme"}, "a"),
    ],
)
def test_it_selects_exactly_the_messages_that_meet_every_criterion(params, selected):
    search = parse(**params)
    assert "".join(m["MessageId"] for m in MESSAGES if search.matches(m)) == selected


def test_it_selects_a_triage_group_by_its_resolved_message_ids():
    search = Search(scan_id=3, group="sig", group_ids=frozenset({"b", "c"}), min_receives=4)
    assert [m["MessageId"] for m in MESSAGES if search.matches(m)] == ["c"]
    assert "triage group of scan #3, 2 message(s); received at least 4 time(s)" == search.describe()


def test_it_matches_a_shown_message_as_it_matches_a_received_one():
    search = parse(attribute="tenant", value="acme", sent_after="2026-12-05", max_receives="3", request_ids="req-1")
    shown = [peek.peeked(m, "requestId") for m in MESSAGES]
    assert [search.matches_shown(p) for p in shown] == [search.matches(m) for m in MESSAGES] == [True, False, False]


def test_it_does_not_match_an_attribute_value_against_a_binary_attribute():
    m = message("x")
    m["MessageAttributes"]["blob"] = {"DataType": "Binary", "BinaryValue": b"\x00\x01"}
    search = parse(attribute="blob", value="binary, 2 bytes")
    assert not search.matches(m) and not search.matches_shown(peek.peeked(m, ""))


@pytest.mark.parametrize(
    "params, field, sentence",
    [
        ({}, "", "Give at least one criterion"),
        ({"attribute": "tenant"}, "value", "Give both the attribute name and the value"),
        ({"value": "acme"}, "attribute", "Give both the attribute name and the value"),
        ({"scan": "x", "group": "sig"}, "scan", "The scan must be a scan number, not 'x'."),
        ({"scan": "3"}, "group", "A triage group needs both its scan number and its signature."),
        ({"group": "sig"}, "scan", "A triage group needs both"),
        ({"sent_after": "yesterday"}, "sent_after", "'yesterday' is not a date or time"),
        ({"sent_before": "2026-13-40"}, "sent_before", "is not a date or time"),
        ({"sent_after": "2026-12-06", "sent_before": "2026-12-05"}, "sent_before", "must be later than"),
        ({"min_receives": "-1"}, "min_receives", "A receive count is a whole number from 0 up, not '-1'."),
        ({"max_receives": "many"}, "max_receives", "not 'many'"),
        ({"min_receives": "5", "max_receives": "2"}, "max_receives", "at least the fewest"),
        ({"message_ids": " ".join(f"m{i}" for i in range(1001))}, "message_ids", "at most 1,000 message ids"),
        ({"body": "x" * 4097}, "body", "at most 4,096 characters"),
    ],
)
def test_it_refuses_each_bad_value_with_a_sentence(params, field, sentence):
    with pytest.raises(SearchError) as caught:
        parse(**params)
    assert sentence in caught.value.errors[field]


def test_it_refuses_request_ids_when_the_pipeline_has_no_request_id_attribute():
    with pytest.raises(SearchError, match="no request-id attribute"):
        Search.parse({"request_ids": "req-1"}, "")


def test_it_survives_the_json_round_trip_of_a_task():
    search = parse(
        attribute="tenant",
        value="acme",
        body=" spaced ",
        message_ids="a b",
        request_ids="req-1",
        sent_after="2026-12-05 10:00",
        sent_before="2026-12-06",
        min_receives="0",
        max_receives="9",
    )
    search = Search(
        **{**search.__dict__, "scan_id": 4, "group": "sig", "group_title": "Timeout", "group_ids": frozenset({"a"})}
    )
    again = Search.from_json(search.to_json())
    assert again == search
    assert json.loads(search.to_json())["summary"] == search.describe()
    assert Search.parse(search.params(), "requestId").params() == search.params()


def test_it_refuses_to_read_a_broken_task_search():
    with pytest.raises(RedriveError, match="cannot be read"):
        Search.from_json("[1, 2]")


def test_it_says_which_searches_reveal_content():
    assert parse(body="x").needs_bodies() and parse(attribute="a", value="b").needs_bodies()
    assert not parse(message_ids="a", min_receives="2", sent_after="2026-12-01").needs_bodies()
    assert (
        Filter.from_search(parse(body="x")).needs_bodies()
        and not Filter.from_search(parse(message_ids="a")).needs_bodies()
    )


def test_it_runs_a_search_task_through_the_existing_filter():
    search = parse(body="timeout", max_receives="3")
    task = RedriveTask(**Filter.from_search(search).task_fields())
    flt = Filter.from_task(task)
    assert task.filter_kind == FilterKind.SEARCH and flt.search == search
    assert [m["MessageId"] for m in MESSAGES if flt.matches(m)] == ["a"]
    assert task.filter_description() == "search: body contains 'timeout'; received at most 3 time(s)"
    with pytest.raises(RedriveError, match="was not looked up"):
        Filter.from_search(Search(scan_id=1, group="sig")).validate()


# --- the page and the actions, on the emulator -----------------------------------------------------------------


@pytest.fixture
def orders(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 25)
    return p


@pytest.fixture
def operator(as_user):
    return as_user("operator", "view_pipeline", "peek_dlq", "redrive_dlq", "delete_dlq_messages", "view_message_bodies")


@pytest.fixture
def peeker(as_user):
    return as_user("peeker", "view_pipeline", "peek_dlq", "redrive_dlq", "delete_dlq_messages")


def url(name, *args):
    return reverse(f"admin:pipelines_pipeline_{name}", args=args)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def ids_by_order(pipeline) -> dict[int, str]:
    return {json.loads(m.body)["order"]: m.id for m in peek.scan(pipeline, 100).messages}


@pytest.fixture
def group(orders):
    """Scan #n of the orders DLQ with a group of five messages (orders 3, 7, 11, 15, 19)."""
    ids = ids_by_order(orders)
    scan = TriageScan.objects.create(pipeline=orders, status="completed", cap=100, examined=25, complete=True)
    g = TriageGroup.objects.create(scan=scan, signature="a" * 64, kind="error", title="KeyError: 'card'", count=5)
    other = TriageGroup.objects.create(scan=scan, signature="b" * 64, kind="shape", title="Other", count=20)
    for order, mid in ids.items():
        TriageMessage.objects.create(scan=scan, group=g if order % 4 == 3 and order < 20 else other, message_id=mid)
    return g


def test_it_searches_the_dlq_live_and_says_how_much_it_examined(operator, orders, target):
    res = operator.post(url("dlq_search", orders.pk), {"attribute": "attempt", "value": "2", "min_receives": "1"})
    page = text(res)
    assert res.status_code == 200
    assert 'id="rd-matched">6<' in page and 'id="rd-examined">25<' in page and "The whole DLQ was examined." in page
    assert page.count('<pre class="rd-body">') == 6 and "req-00002" in page and "req-00006" in page
    entry = AuditEntry.objects.get(action="dlq_search")
    assert (
        entry.detail["matched"] == 6
        and entry.detail["criteria"] == "attribute attempt = '2'; received at least 1 time(s)"
    )
    assert counts(target, orders.dlq_url)["visible"] == 25  # released again


def test_it_shows_the_form_on_get_without_receiving(operator, orders, target, group):
    res = operator.get(url("dlq_search", orders.pk) + f"?scan={group.scan_id}&group={group.signature}&min_receives=2")
    page = text(res)
    assert f'value="{group.signature}"' in page and 'name="min_receives" value="2"' in page
    assert f"triage group “KeyError: &#x27;card&#x27;” of scan #{group.scan_id}, 5 message(s)" in page
    assert 'id="rd-matched"' not in page and not AuditEntry.objects.exists()
    assert [int(m["Attributes"]["ApproximateReceiveCount"]) for m in read_all(target, orders.dlq_url)] == [2] * 25


def test_it_needs_the_peek_permission_to_search(as_user, orders):
    viewer = as_user("viewer", "view_pipeline")
    assert viewer.get(url("dlq_search", orders.pk)).status_code == 200
    assert viewer.post(url("dlq_search", orders.pk), {"body": "x"}).status_code == 403


def test_it_refuses_body_and_attribute_value_searches_without_the_bodies_permission(peeker, orders, target):
    for params in ({"body": "order"}, {"attribute": "attempt", "value": "2"}):
        page = text(peeker.post(url("dlq_search", orders.pk), params))
        assert "needs the permission to view message bodies" in page and 'id="rd-matched"' not in page
    assert not AuditEntry.objects.exists()
    masked = text(peeker.post(url("dlq_search", orders.pk), {"request_ids": "req-00004"}))
    assert 'id="rd-matched">1<' in masked and "JSON object, 3 keys" in masked and '"order"' not in masked


def test_it_shows_a_bad_value_on_the_form(operator, orders):
    page = text(operator.post(url("dlq_search", orders.pk), {"sent_after": "soon", "min_receives": "x"}))
    assert "&#x27;soon&#x27; is not a date or time" in page and "not &#x27;x&#x27;" in page
    assert not AuditEntry.objects.exists()


def test_it_redrives_exactly_a_triage_group_through_the_batch_engine(
    operator, orders, target, group, eager, fast, django_capture_on_commit_callbacks
):
    carried = f"scan={group.scan_id}&group={group.signature}"
    confirm = text(operator.post(url("dlq_redrive", orders.pk), {"search": carried}))
    assert "triage group “KeyError: &#x27;card&#x27;” of scan" in confirm and "5 message(s)" in confirm
    assert re.search(r'name="dry_run"[^>]*checked', confirm)  # a dry run first, from a search
    form = re.search(r'name="token" value="([^"]+)"', confirm).group(1)
    data = {"confirm": "1", "token": form, "destination": "source", "filter_kind": "search", "search": carried}
    with django_capture_on_commit_callbacks(execute=True):
        res = operator.post(url("dlq_redrive", orders.pk), data)
    task = RedriveTask.objects.get()
    assert res.status_code == 302 and (task.engine, task.status, task.matched, task.moved, task.skipped) == (
        "batch",
        "completed",
        5,
        5,
        20,
    )
    moved = sorted(json.loads(m["Body"])["order"] for m in read_all(target, orders.queue_url))
    assert moved == [3, 7, 11, 15, 19] and counts(target, orders.dlq_url)["visible"] == 20
    assert "search: triage group" in text(operator.get(res["Location"]))


def test_it_refuses_a_group_of_another_pipeline_or_a_forgotten_scan(operator, orders, register, group):
    other = register("billing")
    page = text(operator.post(url("dlq_search", other.pk), {"scan": group.scan_id, "group": group.signature}))
    assert f"Scan #{group.scan_id} of billing has no group with that signature." in page
    TriageMessage.objects.all().delete()
    page = text(operator.post(url("dlq_search", orders.pk), {"scan": group.scan_id, "group": group.signature}))
    assert "are no longer kept; scan the DLQ again" in page


def test_it_deletes_a_group_only_once_the_queue_name_is_typed(
    operator, orders, target, group, eager, fast, django_capture_on_commit_callbacks
):
    carried = f"scan={group.scan_id}&group={group.signature}"
    confirm = text(operator.post(url("dlq_search_delete", orders.pk), {"search": carried}))
    assert "Type the queue name" in confirm and "5 message(s)" in confirm
    wrong = operator.post(url("dlq_search_delete", orders.pk), {"search": carried, "confirm": "1", "confirm_name": "x"})
    assert "Nothing was deleted." in text(wrong) and not RedriveTask.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        res = operator.post(
            url("dlq_search_delete", orders.pk),
            {"search": carried, "confirm": "1", "confirm_name": "orders-dlq", "token": "del-1"},
        )
    task = RedriveTask.objects.get()
    assert res.status_code == 302 and (task.operation, task.moved, task.skipped) == ("delete", 5, 20)
    left = sorted(json.loads(m["Body"])["order"] for m in read_all(target, orders.dlq_url))
    assert left == [o for o in range(25) if o not in (3, 7, 11, 15, 19)]
    assert counts(target, orders.queue_url)["visible"] == 0


def test_it_refuses_a_carried_body_search_from_one_who_may_not_read_bodies(peeker, orders):
    res = peeker.post(url("dlq_search_delete", orders.pk), {"search": "body=order", "confirm": "1"}, follow=True)
    assert "needs the permission to view message bodies. Nothing was deleted." in text(res)
    confirm = text(peeker.post(url("dlq_redrive", orders.pk), {"search": "body=order"}))
    assert "cannot be used" in confirm
    assert not RedriveTask.objects.exists()


def test_it_exports_the_matches_as_json_lines(operator, orders, target):
    res = operator.post(url("dlq_search_export", orders.pk), {"request_ids": "req-00001\nreq-00002"})
    assert res.status_code == 200 and res["Content-Type"].startswith("application/x-ndjson")
    assert "attachment" in res["Content-Disposition"] and res["X-Opsboard-Complete"] == "true"
    rows = [json.loads(line) for line in res.content.decode().splitlines()]
    assert sorted(json.loads(r["body"])["order"] for r in rows) == [1, 2]
    row = next(r for r in rows if r["attributes"]["requestId"]["value"] == "req-00001")
    assert row["attributes"]["attempt"] == {"data_type": "Number", "value": "1"}
    assert row["attributes"]["blob"] == {"data_type": "Binary", "value": None, "size": 3}
    assert row["receive_count"] == 1 and row["sent_at"] and row["message_id"]
    entry = AuditEntry.objects.get(action="dlq_export")
    assert entry.detail["matched"] == 2 and entry.detail["criteria"] == "2 request id(s)"
    assert counts(target, orders.dlq_url)["visible"] == 25


def test_it_refuses_an_export_without_the_bodies_permission_or_on_get(peeker, operator, orders):
    assert peeker.post(url("dlq_search_export", orders.pk), {"request_ids": "req-00001"}).status_code == 403
    assert operator.get(url("dlq_search_export", orders.pk) + "?request_ids=req-00001").status_code == 405
    assert not AuditEntry.objects.exists()


def test_it_shows_invalid_export_criteria_on_the_form_without_a_download(operator, orders):
    res = operator.post(url("dlq_search_export", orders.pk), {"min_receives": "3", "max_receives": "1"})
    assert res["Content-Type"].startswith("text/html") and "at least the fewest" in text(res)
    assert not AuditEntry.objects.exists()


def test_it_resolves_a_group_for_the_pipeline(orders, group):
    search = selection.parse_search({"scan": str(group.scan_id), "group": group.signature}, orders)
    assert len(search.group_ids) == 5 and search.group_title == "KeyError: 'card'"
